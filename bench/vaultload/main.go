// Command vaultload measures a running keygate vault: secret reads and
// durable writes over HTTPS with a real token from the vault's authority,
// from many keep-alive connections at once. It prints requests per second,
// latency percentiles and, given the server's pid, the server's CPU time
// per request read from /proc.
//
// bench/vault.sh starts a vault and runs it; see bench/README.md.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/client"
)

func main() {
	var (
		credsFile = flag.String("credentials", "", "admin.json of the vault")
		pid       = flag.Int("pid", 0, "server process id, for CPU per request")
		conns     = flag.Int("c", 32, "concurrent keep-alive connections")
		duration  = flag.Duration("d", 10*time.Second, "duration of each phase")
		secrets   = flag.Int("secrets", 1000, "distinct secrets to read and write")
		phases    = flag.String("phases", "read,write", "phases to run, in order")
		tokenFile = flag.String("token-file", "", "after seeding, write the bearer token here (mode 0600) for an outside load tool, and stop")
	)
	flag.Parse()

	creds, err := client.Load(*credsFile)
	if err != nil {
		log.Fatal(err)
	}
	hc, err := client.Transport(creds.CAFile)
	if err != nil {
		log.Fatal(err)
	}
	resource := resourceOf(hc, creds.VaultURL)
	token, err := creds.Token(context.Background(), hc, resource+"/.default")
	if err != nil {
		log.Fatal(err)
	}
	l := &load{base: creds.VaultURL, token: token, secrets: *secrets, pid: *pid, conns: *conns}
	if *tokenFile != "" || strings.Contains(*phases, "read") {
		l.seed()
	}
	if *tokenFile != "" {
		if err := os.WriteFile(*tokenFile, []byte(token), 0o600); err != nil {
			log.Fatal(err)
		}
		return
	}
	ops := map[string]func(*http.Client, int) int{"read": l.read, "write": l.write}
	for _, phase := range strings.Split(*phases, ",") {
		op, ok := ops[phase]
		if !ok {
			log.Fatalf("-phases: unknown phase %q (want read or write)", phase)
		}
		l.run(phase, *duration, op)
	}
}

// resourceOf asks the vault for its challenge and returns the resource it
// names, as the SDK does.
func resourceOf(hc *http.Client, base string) string {
	resp, err := hc.Get(base + "/secrets?api-version=7.5")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	_, after, ok := strings.Cut(ch, `resource="`)
	if !ok {
		log.Fatalf("no resource in challenge %q", ch)
	}
	res, _, _ := strings.Cut(after, `"`)
	return res
}

type load struct {
	base    string
	token   string
	secrets int
	pid     int
	conns   int
}

// client returns an HTTP client with one keep-alive connection of its own.
func (l *load) client() *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     clientTLS(),
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
	}
	return &http.Client{Transport: tr}
}

func clientTLS() *tls.Config {
	hc, err := client.Transport(os.Getenv("KEYGATE_BENCH_CA"))
	if err != nil {
		log.Fatal(err)
	}
	return hc.Transport.(*http.Transport).TLSClientConfig
}

const value = `{"value":"a-secret-value-of-a-typical-size-0123456789abcdef0123456789abcdef"}`

func (l *load) seed() {
	c := l.client()
	for i := range l.secrets {
		if code := l.do(c, "PUT", l.name(i), value); code != http.StatusOK {
			log.Fatalf("seeding: status %d", code)
		}
	}
}

func (l *load) name(i int) string { return "/secrets/bench-" + strconv.Itoa(i%l.secrets) }

func (l *load) read(c *http.Client, i int) int  { return l.do(c, "GET", l.name(i)+"/", "") }
func (l *load) write(c *http.Client, i int) int { return l.do(c, "PUT", l.name(i), value) }

func (l *load) do(c *http.Client, method, path, body string) int {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, l.base+path+"?api-version=7.5", rd)
	req.Header.Set("Authorization", "Bearer "+l.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// run drives op from l.conns goroutines for d and prints the results.
func (l *load) run(phase string, d time.Duration, op func(*http.Client, int) int) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		lat      []time.Duration
		failures atomic.Int64
		next     atomic.Int64
	)
	cpu0 := cpuTime(l.pid)
	start := time.Now()
	deadline := start.Add(d)
	for range l.conns {
		wg.Go(func() {
			c := l.client()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if op(c, int(next.Add(1))) != http.StatusOK {
					failures.Add(1)
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(l.pid) - cpu0
	report(phase, lat, failures.Load(), elapsed, cpu, l.conns)
}

func report(phase string, lat []time.Duration, failures int64, elapsed, cpu time.Duration, conns int) {
	slices.Sort(lat)
	n := len(lat)
	if n == 0 {
		fmt.Printf("%s: no requests\n", phase)
		return
	}
	pct := func(p float64) time.Duration { return lat[min(n-1, int(float64(n)*p))] }
	var b bytes.Buffer
	fmt.Fprintf(&b, "%-5s conns=%d requests=%d failures=%d rps=%.0f p50=%v p99=%v",
		phase, conns, n, failures, float64(n)/elapsed.Seconds(), pct(0.50), pct(0.99))
	if cpu > 0 {
		fmt.Fprintf(&b, " server_cpu_per_req=%.1fµs", float64(cpu.Microseconds())/float64(n))
	}
	fmt.Println(b.String())
}

// cpuTime reads a process's user and system CPU time from /proc.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th of them.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}
