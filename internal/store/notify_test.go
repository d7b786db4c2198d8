package store_test

import (
	"testing"

	"github.com/keygate/keygate/internal/store"
)

func TestHub(t *testing.T) {
	var h store.Hub
	a, cancelA := h.Subscribe("a")
	b, cancelB := h.Subscribe("b")
	defer cancelB()

	h.Wake("a")
	h.Wake("a") // coalesced with the first
	if !received(a) {
		t.Error("subscriber of a not woken by Wake(a)")
	}
	if received(a) {
		t.Error("two wake-ups before a look were not coalesced into one")
	}
	if received(b) {
		t.Error("subscriber of b woken by Wake(a)")
	}

	h.WakeAll()
	if !received(a) || !received(b) {
		t.Error("WakeAll did not wake every subscriber")
	}

	cancelA()
	h.Wake("a")
	if received(a) {
		t.Error("subscriber woken after it cancelled")
	}
}

func received(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
