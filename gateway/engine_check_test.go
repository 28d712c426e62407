package gateway

import "github.com/surge-retail/surge/engine"

// *engine.Engine is the Engine the gateway serves.
var _ Engine = (*engine.Engine)(nil)
