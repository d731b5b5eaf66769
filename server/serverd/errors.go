package serverd

// UsageError marks a bad command line of Queue (gserverd queue exits
// with status 2 for it).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }
