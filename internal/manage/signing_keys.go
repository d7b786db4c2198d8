package manage

import (
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/identity"
)

// signingKeyJSON is a token signing key as the API shows it: no key
// material, times as Unix seconds as Azure's attributes have them.
type signingKeyJSON struct {
	KID       string `json:"kid"`
	Created   int64  `json:"created"`
	Activates int64  `json:"activates"`
	Active    bool   `json:"active"`
}

func signingKeyDoc(k identity.SigningKeyInfo) signingKeyJSON {
	return signingKeyJSON{KID: k.KID, Created: k.Created.Unix(), Activates: k.Activates.Unix(), Active: k.Active}
}

func (h *Handler) listSigningKeys(w http.ResponseWriter, r *http.Request, _ *request) error {
	keys, err := h.identities.SigningKeys()
	if err != nil {
		return err
	}
	out := make([]signingKeyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, signingKeyDoc(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

// rotateRequest is the body of a rotation: how long the new key is
// published before it signs, in seconds (default five minutes).
type rotateRequest struct {
	ActivationDelaySeconds *int64 `json:"activationDelaySeconds"`
}

// maxActivationDelay bounds how far off a new key's activation may be.
const maxActivationDelay = 30 * 24 * time.Hour

func (h *Handler) rotateSigningKey(w http.ResponseWriter, r *http.Request, req *request) error {
	var body rotateRequest
	if err := decodeOptional(w, r, &body); err != nil {
		return err
	}
	delay := time.Duration(-1)
	if d := body.ActivationDelaySeconds; d != nil {
		delay = time.Duration(*d) * time.Second
		if *d < 0 || delay > maxActivationDelay {
			return badRequest("activationDelaySeconds: %d is not between 0 and %d", *d, int64(maxActivationDelay/time.Second))
		}
	}
	k, err := h.identities.RotateSigningKey(r.Context(), delay)
	if err != nil {
		return err
	}
	req.rec.ObjectName = k.KID
	h.log.Info("token signing key added", "kid", k.KID, "activates", k.Activates, "by", req.caller.ObjectID)
	writeJSON(w, http.StatusCreated, signingKeyDoc(k))
	return nil
}
