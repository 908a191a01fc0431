package etcdtest

import (
	"context"
	"maps"
	"sync"

	"google.golang.org/grpc"
)

// Counter counts the requests clients send etcd, by gRPC method: each
// unary call, and each message sent on a stream (a lease keep-alive, a
// watch's creation, a progress request), and the messages received on
// streams (watch events and keep-alive answers). It is safe for
// concurrent use.
type Counter struct {
	mu       sync.Mutex // protects the maps
	sent     map[string]int
	received map[string]int
}

// NewCounter returns a Counter at zero.
func NewCounter() *Counter {
	return &Counter{sent: map[string]int{}, received: map[string]int{}}
}

// DialOptions returns the options that make a client count on c.
func (c *Counter) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			c.add(c.sent, method)
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, err
			}
			return &countedStream{ClientStream: s, c: c, method: method}, nil
		}),
	}
}

func (c *Counter) add(m map[string]int, method string) {
	c.mu.Lock()
	m[method]++
	c.mu.Unlock()
}

// Take returns the counts since the last Take (or NewCounter), sent and
// received, and starts again from zero.
func (c *Counter) Take() (sent, received map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sent, received = maps.Clone(c.sent), maps.Clone(c.received)
	clear(c.sent)
	clear(c.received)
	return sent, received
}

// countedStream counts a stream's messages.
type countedStream struct {
	grpc.ClientStream
	c      *Counter
	method string
}

func (s *countedStream) SendMsg(m any) error {
	s.c.add(s.c.sent, s.method)
	return s.ClientStream.SendMsg(m)
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		s.c.add(s.c.received, s.method)
	}
	return err
}
