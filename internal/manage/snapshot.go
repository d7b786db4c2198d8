package manage

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// errNoSnapshot refuses a snapshot of a store that cannot make one.
var errNoSnapshot = errors.New("this server's store is a shared PostgreSQL database: back it up with PostgreSQL's own tools (pg_dump, or the provider's backups)")

// snapshot streams a consistent copy of the whole embedded database:
// every vault, identity and key, sealed as they are at rest. The copy is
// useless without the master key, which it does not hold. Its length is
// announced, so that a copy cut short fails as such in the client.
func (h *Handler) snapshot(w http.ResponseWriter, r *http.Request, req *request) error {
	if h.snapshotter == nil {
		writeError(w, http.StatusNotImplemented, "NotImplemented", errNoSnapshot.Error())
		req.rec.Reason = errNoSnapshot.Error()
		return nil
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var written bool
	err := h.snapshotter.Snapshot(ctx, func(size int64) io.Writer {
		written = true
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Content-Disposition", `attachment; filename="keygate-`+h.now().UTC().Format("20060102T150405Z")+`.db"`)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return w
	})
	if err != nil && written {
		// The status is sent; the short body tells the client.
		h.log.Error("snapshot cut short", "err", err)
		return nil
	}
	if err == nil {
		h.log.Info("snapshot taken", "object_id", req.caller.ObjectID)
	}
	return err
}
