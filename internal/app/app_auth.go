package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/golivestream/live/ingest"
)

// publishAuthorizer returns what decides who may publish, as cfg says:
// nil for anyone.
func publishAuthorizer(cfg Config) (func(context.Context, ingest.PublishRequest) error, error) {
	switch {
	case cfg.PublishKey != "" && cfg.PublishAuthURL != "":
		return nil, errors.New("a publish key and a publish authorization URL: set one")
	case cfg.PublishKey != "":
		return ingest.KeyAuthorizer(cfg.PublishKey), nil
	case cfg.PublishAuthURL != "":
		u, err := url.Parse(cfg.PublishAuthURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("publish authorization URL %q: want http(s)://HOST/PATH", cfg.PublishAuthURL)
		}
		return ingest.HTTPAuthorizer(cfg.PublishAuthURL, &http.Client{Timeout: publishAuthTimeout}), nil
	}
	return nil, nil
}

// publishAuthTimeout bounds a call to the publish authorization service.
const publishAuthTimeout = 5 * time.Second
