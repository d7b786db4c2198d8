package bolt

import (
	"context"

	"github.com/keygate/keygate/internal/store"
)

var _ store.Notifier = (*Store)(nil)

// Notify implements store.Notifier. The file has one process, so waking
// its own subscribers reaches everyone.
func (s *Store) Notify(_ context.Context, topic string) error {
	s.hub.Wake(topic)
	return nil
}

// Subscribe implements store.Notifier.
func (s *Store) Subscribe(topic string) (<-chan struct{}, func()) {
	return s.hub.Subscribe(topic)
}
