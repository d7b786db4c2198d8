package vault

import (
	"fmt"
	"strings"
	"time"
)

// The store layout. Every vault has its own buckets; names are stored
// lower-cased because Key Vault names are case-insensitive, while records
// keep the name as first written, for ids.
//
//	vault/{vault}/secrets           {name}            secretHead
//	vault/{vault}/secret-versions   {name}/{version}  secretVersion
//	vault/{vault}/purge             {unix}/{kind}/{name}  (empty): due purges
func secretsBucket(vault string) string  { return "vault/" + vault + "/secrets" }
func versionsBucket(vault string) string { return "vault/" + vault + "/secret-versions" }
func purgeBucket(vault string) string    { return "vault/" + vault + "/purge" }

func nameKey(name string) string { return strings.ToLower(name) }

func versionKey(name, version string) string { return nameKey(name) + "/" + version }

// purgeKey orders due purges by time, so the purger scans only the ones due.
func purgeKey(at time.Time, kind, name string) string {
	return fmt.Sprintf("%020d/%s/%s", at.Unix(), kind, nameKey(name))
}

// secretHead is one secret, across its versions.
type secretHead struct {
	Name    string    `json:"name"`
	Current string    `json:"current"`
	Created time.Time `json:"created"`

	// Deleted is set while the secret is soft-deleted.
	Deleted *deletion `json:"deleted,omitempty"`

	// Managed is set on the secret of a certificate: its versions are the
	// certificate's, and only certificate operations change it.
	Managed bool `json:"managed,omitempty"`
}

// deletion records when an object was soft-deleted and when it goes for
// good.
type deletion struct {
	Date           time.Time `json:"date"`
	ScheduledPurge time.Time `json:"scheduledPurge"`
}

// secretVersion is one version of a secret: its properties and its sealed
// value.
type secretVersion struct {
	Version     string            `json:"version"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated"`
	Enabled     bool              `json:"enabled"`
	NotBefore   *time.Time        `json:"nbf,omitempty"`
	Expires     *time.Time        `json:"exp,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Managed     bool              `json:"managed,omitempty"`
	Sealed      []byte            `json:"sealed"`
}

// secretAAD is the associated data that binds a sealed value to its record.
func secretAAD(vault, name, version string) []byte {
	return []byte("keygate/v1;vault=" + vault + ";kind=secret;name=" + nameKey(name) + ";version=" + version)
}
