package phx

// Test-only access to the presence replication seam, which adapters reach
// through Replicate and tests drive by hand.
var (
	PresenceSetReplicator = (*Presence).setReplicator
	PresenceTakeDelta     = (*Presence).takeDelta
	PresenceSnapshot      = (*Presence).snapshot
	PresenceMerge         = (*Presence).merge
	PresenceReplicaDown   = (*Presence).replicaDown
	PresenceReplicaName   = (*Presence).replicaName
)
