package gateway

import "github.com/surge-retail/surge/engine"

var _ Engine = (*engine.Engine)(nil)
