package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keygate/keygate/internal/store"
)

var _ store.Notifier = (*Store)(nil)

// setChannel names the notification channel after the schema the store
// lives in, so that keygate deployments sharing one database in separate
// schemas do not wake each other.
func (s *Store) setChannel(ctx context.Context) error {
	var schema string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("reading current schema: %w", classify(err))
	}
	s.channel = "keygate:" + schema
	if len(s.channel) > 63 { // PostgreSQL's identifier limit
		s.channel = s.channel[:63]
	}
	return nil
}

// Notify implements store.Notifier with pg_notify, which PostgreSQL
// delivers to every listening replica, this one included.
func (s *Store) Notify(ctx context.Context, topic string) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, topic); err != nil {
		return fmt.Errorf("notifying %s: %w", topic, classify(err))
	}
	return nil
}

// Subscribe implements store.Notifier. The first subscription starts the
// listener: a connection of its own that LISTENs on the channel until the
// store is closed, reconnecting when it is lost.
func (s *Store) Subscribe(topic string) (<-chan struct{}, func()) {
	s.listenOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.stop = cancel
		s.listenerWG.Go(func() { s.listen(ctx) })
	})
	return s.hub.Subscribe(topic)
}

// listen keeps a LISTEN connection until ctx ends.
func (s *Store) listen(ctx context.Context) {
	for attempt := 0; ; attempt++ {
		connected, err := s.listenConn(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected {
			attempt = 0
		}
		s.log.Warn("notification connection lost; reconnecting", "database", s.host, "err", err)
		if sleep(ctx, reconnectDelay(attempt)) != nil {
			return
		}
	}
}

// listenConn connects, LISTENs and relays notifications to the hub until
// the connection fails. It reports whether it got as far as listening.
func (s *Store) listenConn(ctx context.Context) (bool, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, classify(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return false, classify(err)
	}
	// Whatever was notified while no connection listened is lost: every
	// subscriber looks again.
	s.hub.WakeAll()
	s.log.Debug("listening for notifications", "database", s.host, "channel", s.channel)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, classify(err)
		}
		s.hub.Wake(n.Payload)
	}
}

// reconnectDelay grows from 100ms to 5s.
func reconnectDelay(attempt int) time.Duration {
	return min(100*time.Millisecond<<min(attempt, 6), 5*time.Second)
}
