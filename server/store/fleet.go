package store

import (
	"context"
	"errors"
	"time"
)

// Fleet is implemented by a store that several servers share as members
// of one fleet (the postgres store). Each member owns the records it
// wrote: Replay returns only those, and a member's Delete spares the
// records another member owns. Members keep a lease in the database;
// when a member's lease expires, exactly one surviving member claims its
// records in one transaction and serves them (Claim). A member that
// cannot confirm its lease in time is fenced: it must stop handing out
// the stored jobs it holds, which another member may claim, until the
// store tells it which of them it still owns.
type Fleet interface {
	// Member is this server's member id; "" when the store was opened
	// without one (not a member: the rest does not apply).
	Member() string
	// RunFleet keeps the member's lease, claims the records of expired
	// members and reports to h, until ctx ends. The store's own
	// heartbeat runs from Open; RunFleet is where claims are handed over,
	// so the server calls it once it is ready to take jobs.
	RunFleet(ctx context.Context, h FleetHandler) error
	// FleetStatus describes the fleet as this member last saw it.
	FleetStatus() FleetStatus
}

// FleetHandler is the server's side of a Fleet.
type FleetHandler interface {
	// Fence tells the server that the member's lease is not confirmed:
	// it must at once stop handing out the stored jobs it holds that are
	// not running and forget them. Their records stay in the store for
	// whoever owns them; the jobs running go on, and their deletes are
	// spared by the store if the record changed owner meanwhile.
	Fence()
	// Adopt gives the server stored jobs to serve: the records claimed
	// from an expired member, or, after a fence, the records the member
	// still owns (Claim.Own). The server skips the records it already
	// holds.
	Adopt(c Claim)
}

// Claim is a set of records that became this member's.
type Claim struct {
	// From is the member whose records were claimed; for Own, this
	// member itself.
	From string
	// Own: the records this member still owns, read again after a
	// fence; the server skips the ones it still holds (running).
	Own bool
	// Jobs are the records.
	Jobs []Job
	// Expired is how long before the claim the member's lease expired,
	// as the database's clock measures both (0 for Own).
	Expired time.Duration
	// At is when the claim committed, on the server's clock.
	At time.Time
}

// FleetStatus is what a member knows of its fleet.
type FleetStatus struct {
	// Member is this server's member id.
	Member string `json:"member"`
	// Epoch identifies this member's current lease; it grows at every
	// join (a start, or a rejoin after losing the lease).
	Epoch int64 `json:"epoch"`
	// Fenced: the lease is not confirmed; stored jobs are not served.
	Fenced bool `json:"fenced"`
	// HeartbeatInterval and LeaseTimeout are the fleet's timing.
	HeartbeatInterval time.Duration `json:"heartbeat_interval_ns"`
	LeaseTimeout      time.Duration `json:"lease_timeout_ns"`
	// Members are the members with a lease row, this one included.
	Members []Member `json:"members"`
	// Claims are the latest claims this member made, newest last.
	Claims []ClaimInfo `json:"claims"`
	// ClaimsTotal and ClaimedJobs count every claim this member made
	// since it started, and the records they took.
	ClaimsTotal int64 `json:"claims_total"`
	ClaimedJobs int64 `json:"claimed_jobs"`
	// LeaseLost counts the times this member found its lease claimed by
	// another member.
	LeaseLost int64 `json:"lease_lost"`
}

// Member is one member's lease as last read.
type Member struct {
	ID    string `json:"id"`
	Epoch int64  `json:"epoch"`
	// ExpiresIn is the time left on the lease when it was read (negative:
	// expired, not yet claimed).
	ExpiresIn time.Duration `json:"expires_in_ns"`
	Self      bool          `json:"self"`
}

// ClaimInfo describes one claim made by this member.
type ClaimInfo struct {
	From string    `json:"from"`
	Jobs int       `json:"jobs"`
	At   time.Time `json:"at"`
	// Expired is how long after the lease expired the claim committed.
	Expired time.Duration `json:"expired_ns"`
	// Takeover is how long after the lease expired the first claimed job
	// went to a worker (0: none yet); the server fills it in.
	Takeover time.Duration `json:"takeover_ns"`
}

// ErrFenced is returned (wrapped) by a fleet store's Add while the
// member's lease is not confirmed: another member may own its records.
var ErrFenced = errors.New("store: lease not confirmed (fenced)")
