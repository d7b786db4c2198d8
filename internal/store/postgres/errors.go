package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keygate/keygate/internal/store"
)

// classify wraps the errors that mean the database cannot be reached now
// (no connection, a server shutting down or refusing connections) in
// store.ErrUnavailable, so that the vault answers 503 and clients retry.
// Errors of the context and PostgreSQL's answers to a query come back as
// they are.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, store.ErrUnavailable) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && !unavailableCode(pgErr.Code) {
		return err
	}
	// What is left failed below SQL: dialing, TLS, a connection that broke
	// or was closed under the transaction.
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

// unavailableCode reports whether a SQLSTATE means the server cannot serve
// right now rather than that the query was wrong.
func unavailableCode(code string) bool {
	switch code {
	case "57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now
		"53300": // too_many_connections
		return true
	}
	return len(code) == 5 && code[:2] == "08" // connection exceptions
}

// isConflict reports whether err is PostgreSQL aborting a transaction for
// a conflict with a concurrent one, after which the transaction can simply
// run again.
func isConflict(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "40001" || // serialization_failure
		pgErr.Code == "40P01" // deadlock_detected
}
