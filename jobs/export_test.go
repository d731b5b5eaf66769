package jobs

// Held returns how many jobs each handler of a pipelined pool holds, for
// tests that must know a job has been taken before sending the next.
func (r *Resident) Held() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, len(r.slots))
	for i, sl := range r.slots {
		out[i] = sl.out
	}
	return out
}
