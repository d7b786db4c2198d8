package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/client"
)

// clientFlags say which vault to talk to and as whom.
type clientFlags struct {
	vaultURL    string
	credentials string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.vaultURL, "vault-url", "", "vault URL (default: the one in --credentials)")
	cmd.PersistentFlags().StringVar(&f.credentials, "credentials", filepath.Join(defaultHome(), "admin.json"),
		"service principal credentials file, as `keygate up` writes admin.json")
}

func (f *clientFlags) load() (client.Credentials, error) {
	return client.Load(f.credentials)
}

func (f *clientFlags) secrets() (*azsecrets.Client, error) {
	c, err := f.load()
	if err != nil {
		return nil, err
	}
	return c.Secrets(f.vaultURL)
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// secretOut is a secret as `az keyvault secret show` prints it.
type secretOut struct {
	ID                 string            `json:"id"`
	Name               string            `json:"name"`
	Value              *string           `json:"value,omitempty"`
	ContentType        *string           `json:"contentType"`
	Attributes         attributesOut     `json:"attributes"`
	Tags               map[string]string `json:"tags"`
	KID                *string           `json:"kid,omitempty"`
	Managed            *bool             `json:"managed,omitempty"`
	RecoveryID         *string           `json:"recoveryId,omitempty"`
	DeletedDate        *time.Time        `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *time.Time        `json:"scheduledPurgeDate,omitempty"`
}

type attributesOut struct {
	Enabled         *bool      `json:"enabled"`
	NotBefore       *time.Time `json:"notBefore"`
	Expires         *time.Time `json:"expires"`
	Created         *time.Time `json:"created"`
	Updated         *time.Time `json:"updated"`
	RecoverableDays *int32     `json:"recoverableDays"`
	RecoveryLevel   *string    `json:"recoveryLevel"`
}

func attributes(a *azsecrets.SecretAttributes) attributesOut {
	if a == nil {
		return attributesOut{}
	}
	return attributesOut{
		Enabled: a.Enabled, NotBefore: a.NotBefore, Expires: a.Expires, Created: a.Created,
		Updated: a.Updated, RecoverableDays: a.RecoverableDays, RecoveryLevel: a.RecoveryLevel,
	}
}

func tags(in map[string]*string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func idParts(id *azsecrets.ID) (string, string) {
	if id == nil {
		return "", ""
	}
	return string(*id), id.Name()
}

func fromSecret(s azsecrets.Secret) secretOut {
	id, name := idParts(s.ID)
	return secretOut{ID: id, Name: name, Value: s.Value, ContentType: s.ContentType,
		Attributes: attributes(s.Attributes), Tags: tags(s.Tags), KID: (*string)(s.KID), Managed: s.Managed}
}

func fromProperties(s *azsecrets.SecretProperties) secretOut {
	id, name := idParts(s.ID)
	return secretOut{ID: id, Name: name, ContentType: s.ContentType,
		Attributes: attributes(s.Attributes), Tags: tags(s.Tags), Managed: s.Managed}
}

func fromDeleted(s azsecrets.DeletedSecret) secretOut {
	id, name := idParts(s.ID)
	return secretOut{ID: id, Name: name, ContentType: s.ContentType, Attributes: attributes(s.Attributes),
		Tags: tags(s.Tags), RecoveryID: s.RecoveryID, DeletedDate: s.DeletedDate, ScheduledPurgeDate: s.ScheduledPurgeDate}
}

func fromDeletedProperties(s *azsecrets.DeletedSecretProperties) secretOut {
	id, name := idParts(s.ID)
	return secretOut{ID: id, Name: name, ContentType: s.ContentType, Attributes: attributes(s.Attributes),
		Tags: tags(s.Tags), RecoveryID: s.RecoveryID, DeletedDate: s.DeletedDate, ScheduledPurgeDate: s.ScheduledPurgeDate}
}
