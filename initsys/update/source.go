package update

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// openSource opens a bundle: a local file, or an http(s) URL read with
// resumption (a broken transfer continues with a Range request, checked
// against the first response's ETag). size is -1 when unknown.
func openSource(ctx context.Context, src string) (io.ReadCloser, int64, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		f, err := os.Open(src)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, fi.Size(), nil
	}
	h := &httpReader{ctx: ctx, url: src, client: &http.Client{Timeout: 0}}
	if err := h.get(); err != nil {
		return nil, 0, err
	}
	return h, h.size, nil
}

// httpReader reads a URL, resuming after errors with Range requests.
type httpReader struct {
	ctx    context.Context
	url    string
	client *http.Client
	body   io.ReadCloser
	etag   string
	size   int64
	off    int64
	tries  int
}

const resumeTries = 5

func (h *httpReader) get() error {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return err
	}
	if h.off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", h.off))
		if h.etag != "" {
			req.Header.Set("If-Range", h.etag)
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	switch {
	case h.off == 0 && resp.StatusCode == http.StatusOK:
		h.etag, h.size = resp.Header.Get("ETag"), resp.ContentLength
	case h.off > 0 && resp.StatusCode == http.StatusPartialContent:
	default:
		resp.Body.Close()
		return fmt.Errorf("GET %s: %s", h.url, resp.Status)
	}
	h.body = resp.Body
	return nil
}

func (h *httpReader) Read(b []byte) (int, error) {
	for {
		n, err := h.body.Read(b)
		h.off += int64(n)
		if err == nil || err == io.EOF && (h.size < 0 || h.off >= h.size) {
			return n, err
		}
		// A short or broken transfer: resume where it stopped.
		h.body.Close()
		if h.tries++; h.tries > resumeTries || h.ctx.Err() != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("GET %s at byte %d: %w", h.url, h.off, err)
		}
		time.Sleep(time.Duration(h.tries) * time.Second)
		if gerr := h.get(); gerr != nil {
			return n, gerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (h *httpReader) Close() error { return h.body.Close() }
