package gateway

import (
	"github.com/surge-retail/surge/engine"
	"github.com/valyala/fasthttp"
)

// waitLottery holds a reserve that entered its sale's lottery window
// (engine/lottery.go) until its turn, and returns the outcome. While it
// waits, the request gives back its slot of the reserving writes: a crowd
// waiting for a draw must not starve the other writes, and the lottery
// has its own bound (engine.Options.LotteryQueueMax, 429 past it). Its
// reserve runs in a slot taken back without the bound, since the lottery
// serves only engine.Options.LotteryServeMax entrants at once. The wait
// ends at the ticket's WaitUntil at the latest, and the reserve then has
// the usual engine timeout.
func (s *Server) waitLottery(ctx *fasthttp.RequestCtx, t *engine.LotteryTicket) (engine.Reservation, error) {
	sem := s.sems[classWrites]
	sem.release()
	defer sem.reclaim()
	wctx := s.newEngineCtx(ctx)
	wctx.deadline = t.WaitUntil().Add(s.o.EngineTimeout)
	defer wctx.cancel()
	return t.Reserve(wctx)
}
