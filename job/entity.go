package job

import (
	"fmt"
	"slices"
	"strings"
)

// ClusterStatus says whether a cluster takes new jobs.
type ClusterStatus string

const (
	ClusterUp           ClusterStatus = "UP"
	ClusterOutOfService ClusterStatus = "OUT_OF_SERVICE" // running jobs finish; no new ones
	ClusterTerminated   ClusterStatus = "TERMINATED"
)

// CommandStatus says whether a command may be chosen for new jobs.
type CommandStatus string

const (
	CommandActive     CommandStatus = "ACTIVE"
	CommandDeprecated CommandStatus = "DEPRECATED" // kept for reading, not chosen
	CommandInactive   CommandStatus = "INACTIVE"
)

// Cluster is a place jobs run against (in Genie's sense: a Hadoop, Spark or
// Trino cluster, or just "local"). Workers pull the jobs routed to it.
type Cluster struct {
	Name        string            `json:"name" yaml:"name"`
	Description string            `json:"description,omitempty" yaml:"description"`
	Tags        []string          `json:"tags,omitempty" yaml:"tags"`
	Status      ClusterStatus     `json:"status" yaml:"status"`
	Env         map[string]string `json:"env,omitempty" yaml:"env"`
	// ConfigFiles (URIs) are fetched into jinn/cluster/<name>/ of each job.
	ConfigFiles []string `json:"configFiles,omitempty" yaml:"configFiles"`
	// Setup is a bash file (a URI) each job sources after its applications'.
	Setup string `json:"setup,omitempty" yaml:"setup"`
}

// Command is an executable jobs ask for by tags.
type Command struct {
	Name        string        `json:"name" yaml:"name"`
	Description string        `json:"description,omitempty" yaml:"description"`
	Tags        []string      `json:"tags,omitempty" yaml:"tags"`
	Status      CommandStatus `json:"status" yaml:"status"`
	// Executable is the argv prefix; the job's args follow it.
	Executable []string          `json:"executable" yaml:"executable"`
	Env        map[string]string `json:"env,omitempty" yaml:"env"`
	// Memory is the default memory of its jobs in MiB (0: the global default).
	Memory int `json:"memory,omitempty" yaml:"memory"`
	// ClusterCriteria limit where the command runs; empty means anywhere.
	ClusterCriteria [][]string `json:"clusterCriteria,omitempty" yaml:"clusterCriteria"`
	// Applications are installed into each job, in this order.
	Applications []string `json:"applications,omitempty" yaml:"applications"`
	// ConfigFiles (URIs) are fetched into jinn/command/<name>/ of each job.
	ConfigFiles []string `json:"configFiles,omitempty" yaml:"configFiles"`
	// Setup is a bash file (a URI) each job sources after the cluster's.
	Setup string `json:"setup,omitempty" yaml:"setup"`
}

// Application is software a command needs (Spark, a JDK, a Python
// environment), installed into each job's directory at run time: its Files
// (URIs: binaries, tarballs) are fetched into jinn/applications/<name>/ and
// its Setup file (a URI of a bash file, which may unpack them and set PATH)
// is sourced before the cluster's, the command's and the job's.
type Application struct {
	Name        string   `json:"name" yaml:"name"`
	Description string   `json:"description,omitempty" yaml:"description"`
	Tags        []string `json:"tags,omitempty" yaml:"tags"`
	Files       []string `json:"files,omitempty" yaml:"files"`
	Setup       string   `json:"setup,omitempty" yaml:"setup"`
}

// Validate checks a cluster definition and fills in its default status.
func (c *Cluster) Validate() error {
	if err := ValidateName("name", c.Name); err != nil {
		return err
	}
	if c.Status == "" {
		c.Status = ClusterUp
	}
	switch c.Status {
	case ClusterUp, ClusterOutOfService, ClusterTerminated:
	default:
		return fieldErr("status", "%q is not one of UP, OUT_OF_SERVICE, TERMINATED", c.Status)
	}
	if err := validateEntityTags(c.Name, c.Tags); err != nil {
		return err
	}
	if err := validateEntityFiles("configFiles", c.ConfigFiles, c.Setup); err != nil {
		return err
	}
	return ValidateEnv("env", c.Env)
}

// validateEntityFiles checks the file URIs and the setup URI of an entity.
func validateEntityFiles(field string, uris []string, setup string) error {
	if len(uris) > MaxDependencies {
		return fieldErr(field, "at most %d files, got %d", MaxDependencies, len(uris))
	}
	if err := validateURIs(field, uris); err != nil {
		return err
	}
	if setup != "" {
		return ValidateURI("setup", setup)
	}
	return nil
}

// Validate checks a command definition and fills in its default status.
func (c *Command) Validate() error {
	if err := ValidateName("name", c.Name); err != nil {
		return err
	}
	if c.Status == "" {
		c.Status = CommandActive
	}
	switch c.Status {
	case CommandActive, CommandDeprecated, CommandInactive:
	default:
		return fieldErr("status", "%q is not one of ACTIVE, DEPRECATED, INACTIVE", c.Status)
	}
	if err := validateEntityTags(c.Name, c.Tags); err != nil {
		return err
	}
	// An empty executable is allowed: it means "the job's args are the argv".
	if len(c.Executable) > 0 && c.Executable[0] == "" {
		return fieldErr("executable", "the first element must not be empty")
	}
	for i, a := range c.Executable {
		if strings.IndexByte(a, 0) >= 0 {
			return fieldErr(fmt.Sprintf("executable[%d]", i), "contains a NUL byte")
		}
	}
	if c.Memory < 0 || c.Memory > MaxMemoryMiB {
		return fieldErr("memory", "must be between 0 and %d MiB, got %d", MaxMemoryMiB, c.Memory)
	}
	for i, cc := range c.ClusterCriteria {
		if len(cc) == 0 {
			return fieldErr(fmt.Sprintf("clusterCriteria[%d]", i), "an empty criterion matches nothing")
		}
		if err := ValidateTags(fmt.Sprintf("clusterCriteria[%d]", i), cc); err != nil {
			return err
		}
	}
	for i, a := range c.Applications {
		if err := ValidateName(fmt.Sprintf("applications[%d]", i), a); err != nil {
			return err
		}
		if slices.Contains(c.Applications[:i], a) {
			return fieldErr(fmt.Sprintf("applications[%d]", i), "%s is listed twice", a)
		}
	}
	if err := validateEntityFiles("configFiles", c.ConfigFiles, c.Setup); err != nil {
		return err
	}
	return ValidateEnv("env", c.Env)
}

// Validate checks an application definition.
func (a *Application) Validate() error {
	if err := ValidateName("name", a.Name); err != nil {
		return err
	}
	if err := validateEntityTags(a.Name, a.Tags); err != nil {
		return err
	}
	return validateEntityFiles("files", a.Files, a.Setup)
}

// validateEntityTags checks the tags of a cluster, command or application.
// Every entity carries the implicit tag "name:<its name>"; an explicit
// "name:<another name>" would let criteria meant for that other entity pick
// this one, so it is refused.
func validateEntityTags(name string, tags []string) error {
	if err := ValidateTags("tags", tags); err != nil {
		return err
	}
	for i, t := range tags {
		if strings.HasPrefix(t, "name:") && t != "name:"+name {
			return fieldErr(fmt.Sprintf("tags[%d]", i), "%q is reserved: every entity carries the implicit tag \"name:<its own name>\", here \"name:%s\"", t, name)
		}
	}
	return nil
}
