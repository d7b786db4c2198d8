package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// Event types of the vault's event log: every change a gateway or another
// replica may act on.
const (
	EventNewVersion    = "new_version"
	EventUpdated       = "updated"
	EventDeleted       = "deleted"
	EventRecovered     = "recovered"
	EventPurged        = "purged"
	EventNearExpiry    = "near_expiry"
	EventExpired       = "expired"
	EventRenewed       = "renewed"
	EventRenewalFailed = "renewal_failed"
)

// Kinds of object an event is about.
const (
	KindSecret      = "secret"
	KindCertificate = "certificate"
)

// DefaultEventRetention is how long events are kept before the purger
// prunes them.
const DefaultEventRetention = 7 * 24 * time.Hour

// Event is one entry of a vault's event log. ID increases by one with
// each event of the vault, across every process sharing the store. Detail
// is a short text for people; it never holds secret material.
type Event struct {
	ID      uint64    `json:"id"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	Version string    `json:"version,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

func eventsBucket(vault string) string { return "vault/" + vault + "/events" }

// eventSeqKey holds the last event id handed out, in the vault's meta
// bucket. It is read and written inside the transaction that records the
// event, so two processes never hand out the same id: the store runs
// their transactions one after the other (PostgreSQL retries one).
const eventSeqKey = "event-seq"

func metaBucket(vault string) string { return "vault/" + vault + "/meta" }

func eventKey(id uint64) string { return fmt.Sprintf("%020d", id) }

// EventsTopic is the store.Notifier topic woken after events of vault are
// recorded.
func EventsTopic(vault string) string { return "vault/" + vault + "/events" }

// recordEvent appends e to vault's log inside tx, with the next id.
func recordEvent(tx store.Tx, vault string, e Event) error {
	last, err := lastEventID(tx, vault)
	if err != nil {
		return err
	}
	e.ID = last + 1
	if err := tx.Put(metaBucket(vault), eventSeqKey, []byte(strconv.FormatUint(e.ID, 10))); err != nil {
		return err
	}
	return putJSON(tx, eventsBucket(vault), eventKey(e.ID), &e)
}

// notifyEvents wakes the subscribers of vault's events, in every process,
// once a transaction that recorded some has committed.
func (s *Service) notifyEvents(ctx context.Context, vault string) {
	s.notify(ctx, EventsTopic(vault))
}

// Events returns up to max events of vault with ids greater than after,
// oldest first. An empty result means none newer exist yet.
func (s *Service) Events(ctx context.Context, vault string, after uint64, max int) ([]Event, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return nil, err
	}
	var out []Event
	err := s.store.View(ctx, func(tx store.Tx) error {
		out = nil
		var decodeErr error
		err := tx.Scan(eventsBucket(vault), "", eventKey(after), func(_ string, raw []byte) bool {
			if len(out) == max {
				return false
			}
			var e Event
			if decodeErr = json.Unmarshal(raw, &e); decodeErr != nil {
				return false
			}
			out = append(out, e)
			return true
		})
		return errors.Join(err, decodeErr)
	})
	return out, err
}

// OldestEventID returns the id of the oldest event vault still keeps, or
// 0 when it keeps none. A reader that last saw an id below it has missed
// events and should re-read the state it follows.
func (s *Service) OldestEventID(ctx context.Context, vault string) (uint64, error) {
	evs, err := s.Events(ctx, vault, 0, 1)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	return evs[0].ID, nil
}

// PruneEvents removes vault's events older than before and returns how
// many it removed. The sequence is kept, so ids are never reused.
func (s *Service) PruneEvents(ctx context.Context, vault string, before time.Time) (int, error) {
	n := 0
	err := s.store.Update(ctx, func(tx store.Tx) error {
		n = 0
		var (
			old       []string
			decodeErr error
		)
		err := tx.Scan(eventsBucket(vault), "", "", func(key string, raw []byte) bool {
			var e Event
			if decodeErr = json.Unmarshal(raw, &e); decodeErr != nil {
				return false
			}
			if !e.Time.Before(before) {
				return false
			}
			old = append(old, key)
			return true
		})
		if err := errors.Join(err, decodeErr); err != nil {
			return err
		}
		for _, k := range old {
			if err := tx.Delete(eventsBucket(vault), k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, err
}

// LastEventID returns the id of vault's newest event, or 0 when it has
// recorded none. A subscriber that starts from it sees every later event.
func (s *Service) LastEventID(ctx context.Context, vault string) (uint64, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return 0, err
	}
	var last uint64
	err := s.store.View(ctx, func(tx store.Tx) (err error) {
		last, err = lastEventID(tx, vault)
		return err
	})
	return last, err
}

// lastEventID reads the id of vault's newest event inside tx: 0 before
// the first.
func lastEventID(tx store.Tx, vault string) (uint64, error) {
	b, err := tx.Get(metaBucket(vault), eventSeqKey)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	last, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reading event sequence: %w", err)
	}
	return last, nil
}

// SubscribeEvents returns a channel that receives a value soon after new
// events of vault are recorded, by this process or, where the store tells
// processes of each other's writes, by any other; and a function that ends
// the subscription. Wake-ups are hints that may coalesce: the subscriber
// reads Events after the last id it saw. Where the store cannot notify,
// the channel never receives, and the subscriber must look on a timer.
func (s *Service) SubscribeEvents(vault string) (<-chan struct{}, func()) {
	n, ok := s.store.(store.Notifier)
	if !ok {
		return nil, func() {}
	}
	return n.Subscribe(EventsTopic(vault))
}
