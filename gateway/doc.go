// Package gateway is Surge's fasthttp server: routing, sessions, JSON,
// admission control, the inventory feed, admin and operations endpoints and
// metrics. It holds no business rule; it parses, authenticates, admits,
// calls the engine and answers with API.md's envelope and codes.
//
// Use:
//
//	srv, err := gateway.New(gateway.Options{
//		Engine:     eng,          // *engine.Engine
//		AdminToken: adminToken,   // "" disables /admin/v1 and /debug/pprof
//		FeedSecret: feedSecret,   // "" disables the feed
//		Login:      gateway.LoginOptions{Provider: gateway.ProviderDev},
//		Registry:   reg,          // nil: a new one with Go and process collectors
//	})
//	go srv.Serve(ln)              // returns nil after Shutdown
//	...
//	srv.Shutdown(ctx)             // stops accepting, drains requests in flight
//
// Every default is documented on Options. The request path is:
// route (router.go; a known path with another method is 405 with Allow
// and code 40000, methods.go) -> in-flight bound of the route class
// (503/50300 when full, nothing waits) -> body limit (413/41300) -> session or admin token
// or feed signature -> strict JSON decoding and input checks (40000) -> one
// engine call, which carries the Idempotency-Key and request digest
// (engine.Attempt.Once) and decides the rest itself: for a flash
// reservation an unknown sale, not active and sold out (from memory when
// nothing is left), the sale's admission gate (429/42900; counted here as
// sheds when the engine marks them engine.ErrShed) and the replay of a
// key's first answer -> errors.go's one table from engine sentinel errors
// to API.md codes. A reserve in a sale's lottery window gets a ticket from
// the engine instead and waits for its turn without its write slot
// (lottery.go).
//
// The storefront routes write the engine's precomputed page bytes inside
// the envelope without encoding or allocating (see alloc_test.go), with a
// fresh page-view token in X-Surge-Page-Token (pagetoken.go: signed with
// the session secret; a reserve's token is read in attempt and judged by
// the risk hook). The H5
// storefront (h5.go, /h5/stores/{store_id}) renders the same page bytes
// into HTML once per page version, kept by ETag in a bounded cache.
// The operator's page (adminpage.go, /admin/) is one embedded HTML file
// that reads the admin API with the token the operator pastes into it;
// GET /admin/v1/stats adds for it the server's clock, 42900s by route and
// the reserve route's p50/p99 from its histogram (latency.go).
// POST /admin/v1/recover (recover.go) is the operator's resume after the
// records lost their data; /readyz gives the engine's reason when not
// ready (an open circuit, a backend that did not answer, a data loss).
package gateway
