package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/extauthz/extauthz/internal/identity"
)

// A workload is a pool of pre-marshalled CheckRequests the load generator
// rotates through, and which of them our server must allow.
type workload struct {
	Key, Name, Shape string
	pool             [][]byte
	allow            []bool // allow[i]: ours must allow pool[i]
	allowPrefix      []int  // allowPrefix[i]: how many of pool[:i] ours must allow
}

// checkRequest is what Envoy sends for GET http://app.localhost/orders/42
// on the bundled config's app route, with headers set as Envoy sets them.
func checkRequest(i int, authorization string) ([]byte, error) {
	h := map[string]string{
		":authority":        appHost,
		":method":           "GET",
		":path":             "/orders/42?view=full",
		":scheme":           "http",
		"accept":            "application/json",
		"user-agent":        "bench/1",
		"x-forwarded-proto": "http",
		"x-request-id":      "7b0e6f0a-0000-4000-8000-" + fmt.Sprintf("%012d", i),
	}
	if authorization != "" {
		h["authorization"] = authorization
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(40000 + i%20000)}}}}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}}},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: strconv.Itoa(1000000 + i), Method: "GET", Headers: h, Path: "/orders/42?view=full",
				Host: appHost, Scheme: "http", Protocol: "HTTP/1.1",
			},
		},
		ContextExtensions: map[string]string{"route": "app"},
	}}
	return proto.Marshal(req)
}

// mixedWorkload: 80% allowed (valid tokens of users in engineering), 10%
// denied by policy (valid tokens of guests outside it), 10% without a token,
// interleaved; users sessions of them distinct.
func mixedWorkload(sec secrets, users int) (*workload, error) {
	w := &workload{Key: "mixed", Name: "(a) mixed", Shape: fmt.Sprintf(
		"80%% allowed (%d sessions of users in the route's group), 10%% denied by policy (%d sessions of guests), 10%% no token",
		users, max(users/10, 1))}
	guests := max(users/10, 1)
	allowed := make([]string, users)
	denied := make([]string, guests)
	for i := range allowed {
		tok, err := sec.mint(identity.Claims{Email: userEmail(i), Groups: []string{"engineering"}})
		if err != nil {
			return nil, err
		}
		allowed[i] = "Pomerium " + tok
	}
	for i := range denied {
		tok, err := sec.mint(identity.Claims{Email: guestEmail(i), Groups: []string{"contractors"}})
		if err != nil {
			return nil, err
		}
		denied[i] = "Pomerium " + tok
	}
	n := 10 * users
	for i := 0; i < n; i++ {
		auth, ok := "", false
		switch i % 10 {
		case 8:
			auth = denied[(i/10)%guests]
		case 9:
		default:
			auth, ok = allowed[(i/10*8+i%10)%users], true
		}
		if err := w.add(i, auth, ok); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// impersonationWorkload: administrators acting as users (service-account
// style tokens carrying impersonate_email and impersonate_groups); every
// request is allowed as the impersonated user and audited.
func impersonationWorkload(sec secrets, perAdmin int) (*workload, error) {
	w := &workload{Key: "impersonated", Name: "(b) impersonated administrators", Shape: fmt.Sprintf(
		"%d administrators each impersonating %d users: %d sessions, all allowed as the target", nAdmins, perAdmin, nAdmins*perAdmin)}
	for i := 0; i < nAdmins*perAdmin; i++ {
		tok, err := sec.mint(identity.Claims{Email: adminEmail(i % nAdmins), Groups: []string{"admins"},
			ImpersonateEmail: userEmail(i), ImpersonateGroups: []string{"engineering"}})
		if err != nil {
			return nil, err
		}
		if err := w.add(i, "Pomerium "+tok, true); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// sessionsWorkload: n distinct sessions (distinct jti and email), each sent
// once per pass, so no cache holds the working set unless it holds them all.
func sessionsWorkload(sec secrets, n int) (*workload, error) {
	w := &workload{Key: "sessions", Name: fmt.Sprintf("(c) %s distinct sessions", humanCount(n)), Shape: fmt.Sprintf(
		"%d tokens with distinct jti and email, rotated through in order, all allowed", n)}
	for i := 0; i < n; i++ {
		tok, err := sec.mint(identity.Claims{Email: userEmail(i), Groups: []string{"engineering"}})
		if err != nil {
			return nil, err
		}
		if err := w.add(i, "Pomerium "+tok, true); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// allowedAmong is how many of the first n requests (pool rotated) ours must allow.
func (w *workload) allowedAmong(n int) int {
	if w.allowPrefix == nil {
		w.allowPrefix = make([]int, len(w.allow)+1)
		for i, a := range w.allow {
			w.allowPrefix[i+1] = w.allowPrefix[i]
			if a {
				w.allowPrefix[i+1]++
			}
		}
	}
	full, rest := n/len(w.pool), n%len(w.pool)
	return full*w.allowPrefix[len(w.pool)] + w.allowPrefix[rest]
}

func (w *workload) add(i int, auth string, allow bool) error {
	b, err := checkRequest(i, auth)
	if err != nil {
		return err
	}
	w.pool = append(w.pool, b)
	w.allow = append(w.allow, allow)
	return nil
}

// rawMsg carries pre-marshalled request bytes out, and on the way back only
// the response's google.rpc.Status code: the load generator spends no CPU on
// proto (un)marshalling that the servers under test could have used.
type rawMsg struct {
	b    []byte
	code int64
}

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(*rawMsg).b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m := v.(*rawMsg)
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		b = data.Materialize()
	}
	code, err := statusCode(b)
	m.code = code
	return err
}

// statusCode reads CheckResponse.status.code (field 1, then field 1) from a
// marshalled CheckResponse; a missing status or code is OK (0).
func statusCode(b []byte) (int64, error) {
	st, err := field(b, 1, protowire.BytesType)
	if err != nil || st == nil {
		return 0, err
	}
	st, _ = protowire.ConsumeBytes(st) // field has parsed the value
	code, err := field(st, 1, protowire.VarintType)
	if err != nil || code == nil {
		return 0, err
	}
	v, _ := protowire.ConsumeVarint(code) // likewise
	return int64(int32(v)), nil
}

// field returns the encoded value of the first field num of wire type typ
// in the message b (nil when there is none), skipping every other field.
func field(b []byte, num protowire.Number, typ protowire.Type) ([]byte, error) {
	for len(b) > 0 {
		gotNum, gotTyp, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(gotNum, gotTyp, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		if gotNum == num && gotTyp == typ {
			return b[:n], nil
		}
		b = b[n:]
	}
	return nil, nil
}

const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

var rawCall = grpc.ForceCodecV2(rawCodec{})

// grpcClient is N HTTP/2 connections to one ext_authz server.
type grpcClient struct {
	conns []*grpc.ClientConn
}

func dialGRPC(addr string, n int) (*grpcClient, error) {
	c := &grpcClient{}
	for range n {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.Close()
			return nil, err
		}
		cc.Connect()
		c.conns = append(c.conns, cc)
	}
	return c, nil
}

func (c *grpcClient) Close() {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

// verify sends each of the first n requests of w once and checks the answers:
// the floor must allow all, ours exactly those w.allow says.
func (c *grpcClient) verify(w *workload, n int, floor bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n = min(n, len(w.pool))
	for i := 0; i < n; i++ {
		out := rawMsg{}
		if err := c.conns[i%len(c.conns)].Invoke(ctx, checkMethod, &rawMsg{b: w.pool[i]}, &out, rawCall); err != nil {
			return fmt.Errorf("request %d of %s: %w", i, w.Key, err)
		}
		want := floor || w.allow[i]
		if got := out.code == 0; got != want {
			return fmt.Errorf("request %d of %s: answered status code %d, want allowed=%v", i, w.Key, out.code, want)
		}
	}
	return nil
}

// start runs body in n goroutines, the w-th on connection w modulo the
// connections so the callers spread over them, and returns what waits for
// them all.
func (c *grpcClient) start(n int, body func(w int, cc *grpc.ClientConn)) (wait func()) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body(w, c.conns[w%len(c.conns)])
		}()
	}
	return wg.Wait
}

// closedLoop keeps workers calls in flight (workers spread over the
// connections) for d, as fast as the server answers: maximum throughput.
func (c *grpcClient) closedLoop(pool [][]byte, workers int, d time.Duration) sample {
	var next atomic.Uint64
	lats := make([][]time.Duration, workers)
	errs := make([]int, workers)
	allowed := make([]int, workers)
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	gc := runnerGC()
	start := time.Now()
	deadline := start.Add(d)
	wait := c.start(workers, func(w int, cc *grpc.ClientConn) {
		lat := make([]time.Duration, 0, 1<<14)
		in, out := rawMsg{}, rawMsg{}
		for {
			t0 := time.Now()
			if !t0.Before(deadline) {
				break
			}
			in.b = pool[(next.Add(1)-1)%uint64(len(pool))]
			err := cc.Invoke(ctx, checkMethod, &in, &out, rawCall)
			lat = append(lat, time.Since(t0))
			if err != nil {
				errs[w]++
				if ctx.Err() != nil {
					break
				}
				continue
			}
			if out.code == 0 {
				allowed[w]++
			}
		}
		lats[w] = lat
	})
	wait()
	s := newSample(time.Since(start), 0, lats, errs, allowed)
	s.RunnerGCs = gc()
	return s
}

// openLoop sends at a fixed rate for d whatever the answers do (open loop),
// from up to maxInFlight concurrent calls. Request i is due at start + i/rate
// and its latency runs from that moment to its answer: whatever delays it
// (the pacer waking late, waiting for a free caller, the server) counts, as
// for a client whose requests arrive on schedule, with no coordinated
// omission. How late the pacer handed requests out is kept apart (PacerLag),
// so a tail the runner made can be told from one the server made.
//
// The pacer sleeps on its own thread with nanosleep(2) until the next request
// is due (pacerSleep), so requests leave one by one, as Envoy's would. Before
// issue 19 it slept with time.Sleep, which on an idle Go process lasts at
// least about 1.1 ms, and handed out every request due since at once, stamped
// with the wake-up time: bursts of ~17 requests at 15k/s, whose queueing hit
// the server with the longer Check hardest, and pacer lateness left uncounted.
func (c *grpcClient) openLoop(pool [][]byte, rate float64, d time.Duration, maxInFlight int) sample {
	total := int(rate * d.Seconds())
	type item struct {
		i   int
		due time.Time
	}
	work := make(chan item, min(total, 1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	lats := make([][]time.Duration, maxInFlight)
	errs := make([]int, maxInFlight)
	allowed := make([]int, maxInFlight)
	wait := c.start(maxInFlight, func(w int, cc *grpc.ClientConn) {
		in, out := rawMsg{}, rawMsg{}
		for it := range work {
			in.b = pool[it.i%len(pool)]
			err := cc.Invoke(ctx, checkMethod, &in, &out, rawCall)
			lats[w] = append(lats[w], time.Since(it.due))
			if err != nil {
				errs[w]++
			} else if out.code == 0 {
				allowed[w]++
			}
		}
	})
	gc := runnerGC()
	lag := make([]time.Duration, 0, total)
	undo := precisePacing()
	start := time.Now()
	interval := float64(time.Second) / rate
	dueAt := func(i int) time.Time { return start.Add(time.Duration(float64(i) * interval)) }
	for i := 0; i < total; {
		now := time.Now()
		for ; i < total; i++ {
			due := dueAt(i)
			if due.After(now) {
				break
			}
			lag = append(lag, now.Sub(due))
			work <- item{i: i, due: due}
		}
		if i < total {
			pacerSleep(time.Until(dueAt(i)))
		}
	}
	undo()
	close(work)
	wait()
	s := newSample(time.Since(start), rate, lats, errs, allowed)
	slices.Sort(lag)
	s.PacerLagP99 = quantile(lag, 0.99)
	s.RunnerGCs = gc()
	return s
}
