package live

import (
	"flag"
	"os"
)

// PublishFlags are the -publish-key and -publish-auth flags of the
// commands that run ingest.
type PublishFlags struct {
	key, auth *string
}

// AddPublishFlags registers -publish-key and -publish-auth on fs.
func AddPublishFlags(fs *flag.FlagSet) *PublishFlags {
	return &PublishFlags{
		key:  fs.String("publish-key", "", "key publishers must give, as stream key NAME?key=KEY (default: $LIVE_PUBLISH_KEY, which keeps it out of the process list; neither: anyone may publish)"),
		auth: fs.String("publish-auth", "", "URL of an HTTP service that decides who may publish: POST call=publish&name=NAME&addr=IP&key=..., 2xx allows (empty: see -publish-key)"),
	}
}

// Apply sets cfg's PublishKey and PublishAuthURL from the parsed flags.
func (f *PublishFlags) Apply(cfg *Config) {
	cfg.PublishKey, cfg.PublishAuthURL = *f.key, *f.auth
	if cfg.PublishKey == "" {
		cfg.PublishKey = os.Getenv("LIVE_PUBLISH_KEY")
	}
}
