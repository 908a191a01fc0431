package promreg

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegister(t *testing.T) {
	c := func() prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
	}
	if err := Register(nil, c()); err != nil {
		t.Errorf("nil registry: %v", err)
	}
	reg := prometheus.NewRegistry()
	if err := Register(reg, c()); err != nil {
		t.Fatal(err)
	}
	if err := Register(reg, c()); err == nil || !strings.Contains(err.Error(), "one per registry") {
		t.Errorf("registered twice: %v", err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 1 {
		t.Errorf("gathered %d families, %v", len(mfs), err)
	}
}
