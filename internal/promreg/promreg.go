// Package promreg registers a component's Prometheus collectors.
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers cs with reg, or does nothing when reg is nil. A
// collector already registered (two components of one kind on one
// registry) is an error that says so.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("register metrics: %w (one per registry)", err)
			}
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}
