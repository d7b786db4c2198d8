package identity

import "context"

// PurgeAssertions runs the purge of expired client assertions that Run
// does every minute, for tests.
func (a *Authority) PurgeAssertions(ctx context.Context) error { return a.purgeAssertions(ctx) }
