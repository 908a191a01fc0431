package protection

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Defaults of CPIXConfig.
const (
	defaultCPIXTimeout     = 10 * time.Second
	defaultCPIXMaxResponse = 1 << 20
)

// CPIXConfig configures a CPIXClient.
type CPIXConfig struct {
	// URL is the key server's CPIX endpoint (http or https). Required.
	URL string
	// Client sends the requests. Nil means a client with a 10 s timeout.
	Client *http.Client
	// Header is added to every request (credentials of the key server).
	// Nil means none.
	Header http.Header
	// Systems are the DRM systems whose signalling (PSSH, HLS key URI)
	// is asked for with each key. Nil means none: ClearKey only.
	Systems []SystemID
	// MaxResponse bounds a response body, in bytes. Zero means 1 MiB.
	MaxResponse int64
}

// CPIXClient asks a key server for content keys with DASH-IF CPIX 2.3
// documents: it posts a CPIX document listing the KIDs (and the DRM systems
// of Systems), and reads the keys (pskc:PlainValue, explicitIV) and each
// system's PSSH and URIExtXKey from the answer. It is safe for concurrent
// use.
type CPIXClient struct {
	url     string
	client  *http.Client
	header  http.Header
	systems []SystemID
	max     int64
}

// NewCPIXClient validates a copy of cfg and returns a CPIXClient.
func NewCPIXClient(cfg CPIXConfig) (*CPIXClient, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("new CPIX client: URL %q: want an http or https URL", cfg.URL)
	}
	if cfg.MaxResponse < 0 {
		return nil, fmt.Errorf("new CPIX client: negative MaxResponse %d", cfg.MaxResponse)
	}
	c := &CPIXClient{
		url:    cfg.URL,
		client: cfg.Client,
		header: cfg.Header.Clone(),
		max:    cfg.MaxResponse,
	}
	for _, s := range cfg.Systems {
		id, err := ParseSystemID(string(s))
		if err != nil {
			return nil, fmt.Errorf("new CPIX client: %w", err)
		}
		c.systems = append(c.systems, id)
	}
	if c.client == nil {
		c.client = &http.Client{Timeout: defaultCPIXTimeout}
	}
	if c.max == 0 {
		c.max = defaultCPIXMaxResponse
	}
	return c, nil
}

// Keys asks the key server for the keys of kids, for content contentID
// (the CPIX contentId; empty leaves it out). It returns one Key per KID,
// in order, or an error: ErrCPIX (wrapped) for an answer that is not a
// usable CPIX document.
func (c *CPIXClient) Keys(ctx context.Context, contentID string, kids []KID) ([]Key, error) {
	if len(kids) == 0 {
		return nil, errors.New("cpix: no KID")
	}
	body, err := cpixRequest(contentID, kids, c.systems)
	if err != nil {
		return nil, fmt.Errorf("cpix: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cpix: %w", err)
	}
	for k, vs := range c.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Content-Type", "application/xml")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cpix: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.max+1))
	if err != nil {
		return nil, fmt.Errorf("cpix: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cpix: key server answered %s", resp.Status)
	}
	if int64(len(data)) > c.max {
		return nil, fmt.Errorf("%w: response over %d bytes", ErrCPIX, c.max)
	}
	keys, err := parseCPIX(data, kids)
	if err != nil {
		return nil, fmt.Errorf("cpix: %w", err)
	}
	return keys, nil
}

// Fetch asks for the key of one KID with the stream as content ID: it is
// StoreConfig.Fetch for a Store backed by this key server.
func (c *CPIXClient) Fetch(ctx context.Context, p Period, kid KID) (Key, error) {
	keys, err := c.Keys(ctx, p.Stream, []KID{kid})
	if err != nil {
		return Key{}, err
	}
	return keys[0], nil
}
