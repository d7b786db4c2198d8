package vault

import (
	"context"
	"errors"
	"fmt"
	"net/mail"

	"github.com/keygate/keygate/internal/store"
)

const contactsKey = "certificate-contacts"

// Contact is someone the vault's certificate notices are for. keygate
// records EmailContacts lifetime actions as events; it sends no mail.
type Contact struct {
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// MaxContacts bounds a vault's certificate contacts.
const MaxContacts = 32

// SetContacts replaces the vault's certificate contacts.
func (s *Service) SetContacts(ctx context.Context, vault string, contacts []Contact) ([]Contact, error) {
	if err := validateContacts(contacts); err != nil {
		return nil, err
	}
	if _, err := s.Vault(ctx, vault); err != nil {
		return nil, err
	}
	err := s.store.Update(ctx, func(tx store.Tx) error {
		return putJSON(tx, metaBucket(vault), contactsKey, contacts)
	})
	return contacts, err
}

func validateContacts(contacts []Contact) error {
	if len(contacts) == 0 {
		return badParameter("contacts: give at least one contact; delete the contacts to remove them all")
	}
	if len(contacts) > MaxContacts {
		return badParameter("contacts: %d contacts, at most %d allowed", len(contacts), MaxContacts)
	}
	for i, c := range contacts {
		if c.Email == "" {
			return badParameter("contacts[%d].email: required", i)
		}
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
			return badParameter("contacts[%d].email: %q is not an email address", i, quoteName(c.Email))
		}
		if len(c.Name) > 256 || len(c.Phone) > 64 {
			return badParameter("contacts[%d]: name or phone too long", i)
		}
	}
	return nil
}

// Contacts returns the vault's certificate contacts.
func (s *Service) Contacts(ctx context.Context, vault string) ([]Contact, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return nil, err
	}
	var out []Contact
	err := s.store.View(ctx, func(tx store.Tx) error {
		err := getJSON(tx, metaBucket(vault), contactsKey, &out)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(ErrNotFound, "vault %s has no certificate contacts", vault)
		}
		return err
	})
	return out, err
}

// DeleteContacts removes the vault's certificate contacts and returns
// them.
func (s *Service) DeleteContacts(ctx context.Context, vault string) ([]Contact, error) {
	if _, err := s.Vault(ctx, vault); err != nil {
		return nil, err
	}
	var out []Contact
	err := s.store.Update(ctx, func(tx store.Tx) error {
		err := getJSON(tx, metaBucket(vault), contactsKey, &out)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(ErrNotFound, "vault %s has no certificate contacts", vault)
		}
		if err != nil {
			return fmt.Errorf("reading contacts: %w", err)
		}
		return tx.Delete(metaBucket(vault), contactsKey)
	})
	return out, err
}
