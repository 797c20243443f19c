package broker

// Wire names. Every name placed in a subject was validated by job.ValidateName
// or job.ValidateID, so it can never carry '.', '*' or '>'.
const (
	SubmitStream   = "JINN_SUBMIT"
	SubmitSubject  = "jinn.submit"
	SubmitConsumer = "jinn-scheduler"

	JobsStream = "JINN_JOBS"
	jobsPrefix = "jinn.jobs."

	eventsPrefix = "jinn.events."

	ConfigBucket = "jinn_config"
	LeaderBucket = "jinn_leader"
)

// JobSubject is where resolved jobs for a cluster are published.
func JobSubject(cluster string) string { return jobsPrefix + cluster }

// JobConsumer is the durable pull consumer every worker serving cluster shares.
func JobConsumer(cluster string) string { return "jinn-jobs-" + cluster }

// EventSubject carries the status changes of one job.
func EventSubject(id string) string { return eventsPrefix + id }

// WorkerSubject is the request/reply subject of one worker's verb
// (kill, output, drain).
func WorkerSubject(worker, verb string) string { return "jinn.worker." + worker + "." + verb }
