package apikey

// CutOff puts the verifier in the state its listener leaves it in when
// its connection is lost, for tests of that state without a dead
// listener that would reconnect at once.
func (v *Verifier) CutOff() { v.listenerDown() }
