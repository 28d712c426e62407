package wechatpay

// NotifyJSON is the decoder of notifications and their resources, for the
// test that pins it to encoding/json.
var NotifyJSON = notifyJSON
