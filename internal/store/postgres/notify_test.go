package postgres_test

import (
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store/postgres/pgtest"
)

// notifyWait bounds how long a test waits for a notification; delivery on
// loopback takes milliseconds.
const notifyWait = 10 * time.Second

// TestNotifyReachesOtherReplica notifies through one store and receives
// the wake-up in another on the same database, as two replicas would.
func TestNotifyReachesOtherReplica(t *testing.T) {
	url := pgtest.URL(t)
	a, b := open(t, url), open(t, url)
	defer a.Close()
	defer b.Close()

	c, cancel := b.Subscribe("vaults")
	defer cancel()
	other, cancelOther := b.Subscribe("events")
	defer cancelOther()
	drain(c, other) // the listener's first connection wakes everyone

	if err := a.Notify(t.Context(), "vaults"); err != nil {
		t.Fatal(err)
	}
	if !within(c, notifyWait) {
		t.Fatal("the other replica's subscriber was not woken")
	}
	if within(other, 200*time.Millisecond) {
		t.Error("a subscriber of another topic was woken")
	}
}

// TestNotifyAfterLostConnection ends the listener's connection from the
// server side: subscribers are woken (notifications may have been missed
// meanwhile), and later notifications arrive on the new connection.
func TestNotifyAfterLostConnection(t *testing.T) {
	url := pgtest.URL(t)
	a := open(t, url)
	defer a.Close()
	b := open(t, url+"&application_name=keygate-notify-test")
	defer b.Close()
	c, cancel := b.Subscribe("vaults")
	defer cancel()
	if !within(c, notifyWait) {
		t.Fatal("no wake-up when the listener first connected")
	}

	pgtest.Exec(t, pgtest.SharedURL(t), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'keygate-notify-test'`)
	if !within(c, notifyWait) {
		t.Fatal("no wake-up after the listener reconnected")
	}
	if err := a.Notify(t.Context(), "vaults"); err != nil {
		t.Fatal(err)
	}
	if !within(c, notifyWait) {
		t.Fatal("notification after the reconnect not received")
	}
}

func within(c <-chan struct{}, d time.Duration) bool {
	select {
	case <-c:
		return true
	case <-time.After(d):
		return false
	}
}

// drain waits briefly for, and discards, a pending wake-up on each channel.
func drain(cs ...<-chan struct{}) {
	for _, c := range cs {
		within(c, 2*time.Second)
	}
}
