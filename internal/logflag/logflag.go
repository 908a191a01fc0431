// Package logflag gives the commands their -log-level and -log-format
// flags, and the logger those describe.
package logflag

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// Flags are the logging flags of one command.
type Flags struct {
	level, format *string
}

// Add registers -log-level and -log-format on fs.
func Add(fs *flag.FlagSet) *Flags {
	return &Flags{
		level:  fs.String("log-level", "info", "least severe records logged: debug, info, warn or error"),
		format: fs.String("log-format", "text", "log record format: text (key=value) or json (one object per line)"),
	}
}

// Logger returns a logger writing to w as the flags say, or an error
// naming the flag that is wrong.
func (f *Flags) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(*f.level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", *f.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch *f.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", *f.format)
	}
}
