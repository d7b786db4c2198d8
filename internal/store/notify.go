package store

import (
	"context"
	"sync"
)

// Notifier is implemented by stores that can tell every process using them
// that something changed: the vault's replicas on one PostgreSQL database
// learn of each other's writes this way, and a single process of its own.
//
// A notification is a hint, not a record: it says "look again", and a
// subscriber re-reads the store to learn what changed. Notifications may
// be coalesced, and when a store may have missed some (a lost connection)
// it wakes every subscriber, so a subscriber that re-reads on every wake-up
// misses no change. Delivery is prompt but not bounded: subscribers that
// must act within a time also look on a timer.
type Notifier interface {
	// Notify wakes the subscribers of topic in every process, this one
	// included. Call it after the change has committed.
	Notify(ctx context.Context, topic string) error

	// Subscribe returns a channel that receives a value after each
	// Notify of topic (several may arrive as one), and a function that
	// ends the subscription. The channel is never closed.
	Subscribe(topic string) (<-chan struct{}, func())
}

// Hub fans notifications out to the subscribers in this process. Its zero
// value is ready to use, and it is safe for concurrent use. Embedded
// stores use it as their Notifier; shared stores feed it from the
// database.
type Hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// Subscribe implements Notifier.Subscribe.
func (h *Hub) Subscribe(topic string) (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[string]map[chan struct{}]struct{})
	}
	if h.subs[topic] == nil {
		h.subs[topic] = make(map[chan struct{}]struct{})
	}
	h.subs[topic][c] = struct{}{}
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		delete(h.subs[topic], c)
		if len(h.subs[topic]) == 0 {
			delete(h.subs, topic)
		}
		h.mu.Unlock()
	}
}

// Wake wakes the subscribers of topic in this process.
func (h *Hub) Wake(topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs[topic] {
		wake(c)
	}
}

// WakeAll wakes every subscriber of every topic, for when notifications
// may have been lost.
func (h *Hub) WakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for c := range subs {
			wake(c)
		}
	}
}

// wake sends on c without blocking: a subscriber with a wake-up pending
// has yet to look, and will see this change too when it does.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
