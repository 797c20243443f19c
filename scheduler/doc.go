// Package scheduler admits jobs: it validates a request, records it, resolves
// its command and cluster, and queues it on its cluster's subject. The HTTP
// intake and the consumer of jinn.submit call the same Admit, so a job is
// admitted the same way however it arrived.
//
// It imports job, broker and store.
package scheduler
