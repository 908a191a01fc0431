package pop

import (
	"hash/crc32"
	"slices"
	"strconv"
)

// ring maps keys to nodes by consistent hashing, with replicas virtual
// points per node so that keys spread evenly and a node joining or leaving
// moves only its share. It is immutable, hence safe for concurrent use.
type ring struct {
	points []uint32          // sorted
	owner  map[uint32]string // point -> node
}

// newRing places nodes on a ring; every process given the same nodes
// builds the same ring.
func newRing(nodes []string, replicas int) *ring {
	r := &ring{owner: make(map[uint32]string, len(nodes)*replicas)}
	for _, n := range nodes {
		for i := range replicas {
			p := crc32.ChecksumIEEE([]byte(strconv.Itoa(i) + n))
			if _, taken := r.owner[p]; taken {
				continue // a collision: the first node keeps the point
			}
			r.owner[p] = n
			r.points = append(r.points, p)
		}
	}
	slices.Sort(r.points)
	return r
}

// get returns the node owning key, or "" for an empty ring.
func (r *ring) get(key string) string {
	if len(r.points) == 0 {
		return ""
	}
	h := crc32.ChecksumIEEE([]byte(key))
	i, _ := slices.BinarySearch(r.points, h)
	if i == len(r.points) {
		i = 0
	}
	return r.owner[r.points[i]]
}
