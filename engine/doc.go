// Package engine holds Surge's business rules: catalog and storefront pages
// (千店千面), flash sales (秒杀), group buying (拼团), checkout, the
// reservation lifecycle and its sweeper, idempotency records, the risk hook
// and the asynchronous order writer. It knows nothing of HTTP; its errors
// map one-to-one onto API.md's codes (see api.go).
package engine
