package loadtest

import (
	"testing"
	"time"
)

func TestScheduleViewers(t *testing.T) {
	s := time.Second
	tests := []struct {
		name  string
		sched Schedule
		at    []time.Duration
		want  []int
	}{
		{"steady", Steady(100), []time.Duration{0, 5 * s, time.Hour}, []int{100, 100, 100}},
		{"ramp", Ramp(100, 10*s), []time.Duration{0, 5 * s, 10 * s, 20 * s}, []int{0, 50, 100, 100}},
		{"flash", Flash(500, 30*s, 10*s, 10), []time.Duration{0, 29 * s, 30 * s, 35 * s, 40 * s, 60 * s}, []int{500, 500, 500, 2750, 5000, 5000}},
		{"down", Schedule{{0, 100}, {10 * s, 0}}, []time.Duration{5 * s, 11 * s}, []int{50, 0}},
		{"step", Schedule{{0, 10}, {5 * s, 10}, {5 * s, 20}}, []time.Duration{4 * s, 5 * s, 6 * s}, []int{10, 20, 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.sched.Validate(); err != nil {
				t.Fatal(err)
			}
			for i, at := range tt.at {
				if got := tt.sched.Viewers(at); got != tt.want[i] {
					t.Errorf("at %v: %d viewers, want %d", at, got, tt.want[i])
				}
			}
		})
	}
	if p := Flash(500, 30*s, 10*s, 10).Peak(); p != 5000 {
		t.Errorf("flash peak %d", p)
	}
}

var scheduleCases = []struct {
	name, in string
	want     Schedule
	err      bool
}{
	{name: "text", in: "# a flash crowd\n0s 100\n\n30s 100\n40s 1000\n", want: Schedule{{0, 100}, {30 * time.Second, 100}, {40 * time.Second, 1000}}},
	{name: "json", in: `[{"at":"0s","viewers":5},{"at":"1m","viewers":50}]`, want: Schedule{{0, 5}, {time.Minute, 50}}},
	{name: "empty", in: "# nothing\n", err: true},
	{name: "not from zero", in: "10s 5\n", err: true},
	{name: "backwards", in: "0s 1\n10s 2\n5s 3\n", err: true},
	{name: "negative", in: "0s -1\n", err: true},
	{name: "too many", in: "0s 999999999\n", err: true},
	{name: "three fields", in: "0s 1 2\n", err: true},
	{name: "bad duration", in: "soon 1\n", err: true},
	{name: "bad json", in: `[{"at":5}]`, err: true},
}

func TestParseSchedule(t *testing.T) {
	for _, tt := range scheduleCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSchedule([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func FuzzParseSchedule(f *testing.F) {
	for _, tt := range scheduleCases {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSchedule(data)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed schedule does not validate: %v", err)
		}
		for _, at := range []time.Duration{0, time.Second, time.Hour} {
			if v := s.Viewers(at); v < 0 || v > MaxViewers {
				t.Fatalf("%d viewers at %v", v, at)
			}
		}
	})
}

func TestCrowdAt(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name  string
		sched Schedule
		at    time.Duration
		ok    bool
	}{
		{"flash", Flash(500, 20*s, 10*s, 10), 20 * s, true},
		{"flash without a crowd", Flash(500, 20*s, 10*s, 1), 0, false},
		{"steady", Steady(100), 0, false},
		{"ramp from nobody", Ramp(100, 10*s), 0, false},
		{"step", Schedule{{0, 10}, {5 * s, 10}, {5 * s, 20}}, 5 * s, true},
		{"up, down, up to the peak", Schedule{{0, 10}, {5 * s, 50}, {10 * s, 5}, {20 * s, 100}}, 10 * s, true},
	} {
		if at, ok := tc.sched.CrowdAt(); at != tc.at || ok != tc.ok {
			t.Errorf("%s: %v %v, want %v %v", tc.name, at, ok, tc.at, tc.ok)
		}
	}
}
