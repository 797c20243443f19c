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

// JobSubject is where a resolved job is published: jinn.jobs.<cluster>.<id>.
// The job id in the subject lets anyone find a job's message without a
// consumer (Broker.QueuedJob), e.g. when Redis lost the job's record.
func JobSubject(cluster, id string) string { return jobsPrefix + cluster + "." + id }

// JobFilter matches every job of a cluster: the filter of its consumer.
func JobFilter(cluster string) string { return jobsPrefix + cluster + ".*" }

// JobConsumer is the durable pull consumer every worker serving cluster shares.
func JobConsumer(cluster string) string { return "jinn-jobs-" + cluster }

// EventSubject carries the status changes of one job.
func EventSubject(id string) string { return eventsPrefix + id }

// WorkerSubject is the request/reply subject of one worker's verb
// (kill, output, drain).
func WorkerSubject(worker, verb string) string { return "jinn.worker." + worker + "." + verb }
