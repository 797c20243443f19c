package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/nats-io/nats-server/v2/server"
)

const cfnFile = "deploy/aws/jinn.yaml"

// parseCFN parses a CloudFormation template, turning the short-form tags
// (!Ref X, !Sub s, !GetAtt A.B, !Select [...]) into their long forms
// ({"Ref": X}, {"Fn::Sub": s}, {"Fn::GetAtt": [A, B]}, ...).
func parseCFN(b []byte) (map[string]any, error) {
	f, err := parser.ParseBytes(b, 0)
	if err != nil {
		return nil, err
	}
	if len(f.Docs) != 1 {
		return nil, fmt.Errorf("%d YAML documents, want 1", len(f.Docs))
	}
	v, err := cfnValue(f.Docs[0].Body)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the template is not a mapping")
	}
	return m, nil
}

func cfnValue(n ast.Node) (any, error) {
	switch n := n.(type) {
	case nil:
		return nil, nil
	case *ast.TagNode:
		tag := n.Start.Value
		if strings.HasPrefix(tag, "!!") {
			var v any
			err := yaml.NodeToValue(n, &v)
			return v, err
		}
		v, err := cfnValue(n.Value)
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(tag, "!")
		switch name {
		case "Ref", "Condition":
			return map[string]any{name: v}, nil
		case "GetAtt":
			if s, ok := v.(string); ok {
				res, attr, _ := strings.Cut(s, ".")
				v = []any{res, attr}
			}
		}
		return map[string]any{"Fn::" + name: v}, nil
	case *ast.MappingNode:
		m := map[string]any{}
		for _, mv := range n.Values {
			if err := addPair(m, mv); err != nil {
				return nil, err
			}
		}
		return m, nil
	case *ast.MappingValueNode:
		m := map[string]any{}
		return m, addPair(m, n)
	case *ast.SequenceNode:
		l := []any{}
		for _, e := range n.Values {
			v, err := cfnValue(e)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case *ast.AnchorNode, *ast.AliasNode:
		return nil, fmt.Errorf("line %d: CloudFormation takes no YAML anchors", n.GetToken().Position.Line)
	default:
		var v any
		err := yaml.NodeToValue(n, &v)
		return v, err
	}
}

func addPair(m map[string]any, mv *ast.MappingValueNode) error {
	var k any
	if err := yaml.NodeToValue(mv.Key, &k); err != nil {
		return err
	}
	key := fmt.Sprint(k)
	if _, dup := m[key]; dup {
		return fmt.Errorf("line %d: key %s twice", mv.GetToken().Position.Line, key)
	}
	v, err := cfnValue(mv.Value)
	m[key] = v
	return err
}

var pseudoParams = map[string]bool{
	"AWS::AccountId": true, "AWS::NotificationARNs": true, "AWS::NoValue": true, "AWS::Partition": true,
	"AWS::Region": true, "AWS::StackId": true, "AWS::StackName": true, "AWS::URLSuffix": true,
}

var subVar = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

// checkCFNRefs checks that every Ref, GetAtt and ${} of a Sub names a
// parameter, a resource or a pseudo parameter.
func checkCFNRefs(t *testing.T, tmpl map[string]any, v any, where string) {
	t.Helper()
	params, resources := mapOf(tmpl, "Parameters"), mapOf(tmpl, "Resources")
	known := func(name string) bool {
		return params[name] != nil || resources[name] != nil || pseudoParams[name]
	}
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			switch k {
			case "Ref":
				if s, _ := e.(string); !known(s) {
					t.Errorf("%s: Ref %v names nothing", where, e)
				}
			case "Fn::GetAtt":
				if l, _ := e.([]any); len(l) != 2 || resources[fmt.Sprint(l[0])] == nil {
					t.Errorf("%s: GetAtt %v names no resource", where, e)
				}
			case "Fn::Sub":
				s, _ := e.(string)
				local := map[string]any{}
				if l, ok := e.([]any); ok && len(l) == 2 {
					s, _ = l[0].(string)
					local, _ = l[1].(map[string]any)
				}
				for _, m := range subVar.FindAllStringSubmatch(s, -1) {
					name := m[1]
					if r, _, ok := strings.Cut(name, "."); ok && resources[r] != nil {
						continue
					}
					if !known(name) && local[name] == nil {
						t.Errorf("%s: ${%s} in a Sub names nothing", where, name)
					}
				}
			}
			checkCFNRefs(t, tmpl, e, where+"."+k)
		}
	case []any:
		for i, e := range v {
			checkCFNRefs(t, tmpl, e, where+"["+strconv.Itoa(i)+"]")
		}
	}
}

func TestCloudFormation(t *testing.T) {
	tmpl, err := parseCFN(readFile(t, cfnFile))
	if err != nil {
		t.Fatalf("%s: %v", cfnFile, err)
	}
	if str(tmpl, "AWSTemplateFormatVersion") != "2010-09-09" {
		t.Errorf("AWSTemplateFormatVersion %q", str(tmpl, "AWSTemplateFormatVersion"))
	}
	checkCFNRefs(t, tmpl, tmpl, "template")
	res := mapOf(tmpl, "Resources")
	byType := map[string][]string{}
	for name, r := range res {
		typ := str(r, "Type")
		if !strings.HasPrefix(typ, "AWS::") {
			t.Errorf("resource %s: type %q", name, typ)
		}
		byType[typ] = append(byType[typ], name)
	}
	for typ, n := range map[string]int{
		"AWS::AutoScaling::AutoScalingGroup": 1,
		"AWS::EC2::LaunchTemplate":           2,
		"AWS::EC2::Instance":                 3,
		"AWS::S3::Bucket":                    1,
		"AWS::IAM::Role":                     2,
		"AWS::Route53::RecordSet":            3,
	} {
		if len(byType[typ]) != n {
			t.Errorf("%d resources of type %s (%v), want %d", len(byType[typ]), typ, byType[typ], n)
		}
	}
	if t.Failed() {
		return
	}

	// The worker group: its lifecycle hook holds a scale-in for the drain.
	asgName := byType["AWS::AutoScaling::AutoScalingGroup"][0]
	asg := mapOf(res[asgName], "Properties")
	groupName := str(asg, "AutoScalingGroupName", "Fn::Sub")
	if groupName == "" {
		t.Fatalf("the worker group needs a fixed AutoScalingGroupName (the policies and jinn name it)")
	}
	var hook map[string]any
	for _, h := range list(asg, "LifecycleHookSpecificationList") {
		if str(h, "LifecycleTransition") == "autoscaling:EC2_INSTANCE_TERMINATING" {
			hook = mapOf(h)
		}
	}
	if hook == nil || str(hook, "DefaultResult") != "CONTINUE" {
		t.Fatalf("the worker group has no EC2_INSTANCE_TERMINATING lifecycle hook that continues by default")
	}
	heartbeat, _ := strconv.Atoi(str(hook, "HeartbeatTimeout"))
	if _, set := asg["DesiredCapacity"]; set {
		t.Errorf("DesiredCapacity is set: a stack update would undo jinn's scaling")
	}
	workerLT := str(asg, "LaunchTemplate", "LaunchTemplateId", "Ref")
	workerData := userData(t, res, workerLT)

	// The worker's user data: the unit of deploy/systemd, an id that is the
	// instance's, the drain before the hook completes.
	unit := heredoc(t, workerData, "/etc/systemd/system/jinn-worker.service")
	if unit != string(readFile(t, "deploy/systemd/jinn-worker.service")) {
		t.Errorf("the worker's user data writes a jinn-worker.service that differs from deploy/systemd/jinn-worker.service")
	}
	u, _ := parseUnit([]byte(unit))
	stop, _ := systemdSpan(u.get("Service", "TimeoutStopSec"))
	if heartbeat <= int(stop.Seconds()) {
		t.Errorf("lifecycle HeartbeatTimeout %ds should outlast the worker's TimeoutStopSec %v", heartbeat, stop)
	}
	wenv := parseEnvFile([]byte(heredoc(t, workerData, "/etc/jinn/jinn.env")))
	checkEnv(t, "worker jinn.env", "worker", wenv)
	if wenv["JINN_WORKER_ID"] != "$INSTANCE_ID" || !strings.Contains(workerData, "INSTANCE_ID=$(curl") || !strings.Contains(workerData, "meta-data/instance-id") {
		t.Errorf("the worker's id must be its instance id (the aws provider terminates the drained worker's instance)")
	}
	lenv := parseEnvFile([]byte(heredoc(t, workerData, "/etc/jinn/lifecycle.env")))
	if lenv["GROUP"] != groupName || lenv["HOOK"] != str(hook, "LifecycleHookName") {
		t.Errorf("lifecycle.env names group %q and hook %q; the group is %q with hook %q", lenv["GROUP"], lenv["HOOK"], groupName, str(hook, "LifecycleHookName"))
	}
	script := heredoc(t, workerData, "/usr/local/bin/jinn-lifecycle")
	for _, want := range []string{"autoscaling/target-lifecycle-state", "systemctl stop jinn-worker.service", "complete-lifecycle-action"} {
		if !strings.Contains(script, want) {
			t.Errorf("jinn-lifecycle does not %q", want)
		}
	}
	if strings.Index(script, "systemctl stop") > strings.Index(script, "complete-lifecycle-action") {
		t.Errorf("jinn-lifecycle completes the hook before the drain")
	}
	if !strings.Contains(workerData, "systemctl enable --now jinn-worker.service jinn-lifecycle.service") {
		t.Errorf("the worker's user data does not start jinn-worker and jinn-lifecycle")
	}

	// The control nodes: NATS across three subnets (three zones), with the
	// configuration and units of deploy/.
	subnets := map[string]bool{}
	indexes := map[string]string{} // tag jinn-nats → resource
	var controlLT string
	for _, name := range byType["AWS::EC2::Instance"] {
		p := mapOf(res[name], "Properties")
		sel := list(p, "SubnetId", "Fn::Select")
		if len(sel) != 2 || str(sel[1], "Ref") != "SubnetIds" {
			t.Errorf("%s: SubnetId should be !Select [i, !Ref SubnetIds]", name)
		}
		subnets[fmt.Sprint(at(sel, "0"))] = true
		for _, tag := range list(p, "Tags") {
			if str(tag, "Key") == "jinn-nats" {
				indexes[str(tag, "Value")] = name
			}
		}
		controlLT = str(p, "LaunchTemplate", "LaunchTemplateId", "Ref")
	}
	if len(subnets) != 3 || len(indexes) != 3 || indexes["1"] == "" || indexes["2"] == "" || indexes["3"] == "" {
		t.Errorf("the NATS instances use subnets %v and jinn-nats tags %v; want three distinct of each, 1..3", subnets, indexes)
	}
	for _, rec := range byType["AWS::Route53::RecordSet"] {
		p := mapOf(res[rec], "Properties")
		name := str(p, "Name", "Fn::Sub")
		i := strings.TrimSuffix(strings.TrimPrefix(name, "nats-"), ".${DnsZoneName}")
		if ip := list(p, "ResourceRecords"); len(ip) != 1 || str(ip[0], "Fn::GetAtt", "0") != indexes[i] {
			t.Errorf("record %s does not point at the instance tagged jinn-nats=%s", name, i)
		}
	}
	if lt := mapOf(res[controlLT], "Properties", "LaunchTemplateData", "MetadataOptions"); str(lt, "InstanceMetadataTags") != "enabled" {
		t.Errorf("the control launch template must enable instance metadata tags (the index is read from there)")
	}
	controlData := userData(t, res, controlLT)
	for _, f := range []string{"jinn-nats@.service", "jinn-intake.service", "jinn-scheduler.service"} {
		if heredoc(t, controlData, "/etc/systemd/system/"+f) != string(readFile(t, "deploy/systemd/"+f)) {
			t.Errorf("the control user data writes a %s that differs from deploy/systemd/%s", f, f)
		}
	}
	if !strings.Contains(controlData, "systemctl enable --now jinn-nats@$INDEX.service jinn-scheduler.service jinn-intake.service") {
		t.Errorf("the control user data does not start NATS, the scheduler and the intake")
	}
	natsConf := heredoc(t, controlData, "/etc/jinn/nats-$INDEX.conf")
	for i := 1; i <= 3; i++ {
		rendered := strings.NewReplacer("${DnsZoneName}", "jinn.internal", "$INDEX", strconv.Itoa(i)).Replace(natsConf)
		compareNATSConfig(t, rendered, fmt.Sprintf("deploy/nats/nats-%d.conf", i))
	}
	cenv := parseEnvFile([]byte(heredoc(t, controlData, "/etc/jinn/jinn.env")))
	checkEnvAny(t, "control jinn.env", cenv, "nats", "intake", "scheduler")
	if cenv["JINN_SCALE_PROVIDER"] != "aws" || cenv["JINN_AUTOSCALE"] != "true" || cenv["JINN_SCALE_ASG"] != groupName {
		t.Errorf("the scheduler should autoscale with the aws provider on group %s: %v", groupName, cenv)
	}
	if cenv["JINN_SCALE_POOL"] != wenv["JINN_POOL"] {
		t.Errorf("the scheduler scales pool %q, the workers are in pool %q", cenv["JINN_SCALE_POOL"], wenv["JINN_POOL"])
	}
	if cenv["JINN_MIN_WORKERS"] != "${"+str(asg, "MinSize", "Ref")+"}" || cenv["JINN_MAX_WORKERS"] != "${"+str(asg, "MaxSize", "Ref")+"}" {
		t.Errorf("the scheduler's min/max workers (%s, %s) should be the group's MinSize/MaxSize parameters", cenv["JINN_MIN_WORKERS"], cenv["JINN_MAX_WORKERS"])
	}
	for _, k := range []string{"JINN_NATS", "JINN_REPLICAS", "JINN_REDIS", "JINN_ARCHIVE", "AWS_REGION"} {
		if cenv[k] == "" || cenv[k] != wenv[k] {
			t.Errorf("%s differs between workers (%q) and control nodes (%q)", k, wenv[k], cenv[k])
		}
	}

	checkCFNPolicies(t, res, groupName)
}

// userData is the Fn::Sub text of a launch template's user data.
func userData(t *testing.T, res map[string]any, lt string) string {
	t.Helper()
	s := str(res[lt], "Properties", "LaunchTemplateData", "UserData", "Fn::Base64", "Fn::Sub")
	if !strings.HasPrefix(s, "#!/bin/bash\n") || !strings.Contains(s, "set -euo pipefail") {
		t.Fatalf("%s: user data should be a bash script with set -euo pipefail", lt)
	}
	return s
}

// heredoc returns what `cat > PATH <<EOF ... EOF` in a script writes.
func heredoc(t *testing.T, script, path string) string {
	t.Helper()
	re := regexp.MustCompile(`(?ms)^cat > ` + regexp.QuoteMeta(path) + ` <<'?EOF'?\n(.*?)^EOF$`)
	m := re.FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("the user data does not write %s", path)
	}
	return m[1]
}

// compareNATSConfig checks that a configuration the user data writes means
// what deploy/nats says.
func compareNATSConfig(t *testing.T, text, file string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := server.ProcessConfigFile(tmp)
	if err != nil {
		t.Fatalf("the user data's NATS configuration: %v\n%s", err, text)
	}
	want, err := server.ProcessConfigFile(filepath.Join(repoRoot(t), file))
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		Name, Host, HTTPHost, Store, Cluster, ClusterHost string
		Port, HTTPPort, ClusterPort                       int
		MaxPayload                                        int32
		Mem, File                                         int64
		Sync                                              string
		Routes                                            []string
	}
	v := func(o *server.Options) view {
		var routes []string
		for _, r := range o.Routes {
			routes = append(routes, r.String())
		}
		return view{o.ServerName, o.Host, o.HTTPHost, o.StoreDir, o.Cluster.Name, o.Cluster.Host,
			o.Port, o.HTTPPort, o.Cluster.Port, o.MaxPayload, o.JetStreamMaxMemory, o.JetStreamMaxStore,
			fmt.Sprint(o.SyncInterval, o.SyncAlways), routes}
	}
	if g, w := v(got), v(want); !reflect.DeepEqual(g, w) {
		t.Errorf("the user data's NATS configuration differs from %s:\n got %+v\nwant %+v", file, g, w)
	}
}

// cfnShort renders a value in the template's short form, for comparisons.
func cfnShort(v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return fmt.Sprint(v)
	}
	for k, e := range m {
		name := strings.TrimPrefix(k, "Fn::")
		if l, ok := e.([]any); ok && name == "GetAtt" && len(l) == 2 {
			return fmt.Sprintf("!GetAtt %v.%v", l[0], l[1])
		}
		return fmt.Sprintf("!%s %v", name, e)
	}
	return ""
}

// checkCFNPolicies checks the IAM policies: exactly the actions jinn calls,
// on exactly its resources, attached to the roles that call them.
func checkCFNPolicies(t *testing.T, res map[string]any, groupName string) {
	t.Helper()
	groupArn := "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/" + groupName
	type stmt struct {
		actions  []string
		resource string
	}
	policies := map[string][]stmt{}
	roles := map[string][]string{} // role → policies
	for name, r := range res {
		switch str(r, "Type") {
		case "AWS::IAM::Policy", "AWS::IAM::RolePolicy":
			t.Errorf("%s: use AWS::IAM::ManagedPolicy resources, which this test reads", name)
		case "AWS::IAM::Role":
			if len(list(r, "Properties", "Policies")) > 0 || len(list(r, "Properties", "ManagedPolicyArns")) > 0 {
				t.Errorf("%s: inline or AWS-managed policies escape the least-privilege check", name)
			}
		case "AWS::IAM::ManagedPolicy":
			p := mapOf(r, "Properties")
			for _, role := range list(p, "Roles") {
				roles[str(role, "Ref")] = append(roles[str(role, "Ref")], name)
			}
			for _, s := range list(p, "PolicyDocument", "Statement") {
				if str(s, "Effect") != "Allow" || at(s, "NotAction") != nil || at(s, "NotResource") != nil {
					t.Errorf("%s: only Allow statements with Action and Resource", name)
				}
				var acts []string
				if a, ok := at(s, "Action").(string); ok {
					acts = []string{a}
				} else {
					acts = strs(s, "Action")
				}
				slices.Sort(acts)
				resource := cfnShort(at(s, "Resource"))
				for _, a := range acts {
					if strings.Contains(a, "*") {
						t.Errorf("%s: wildcard action %s", name, a)
					}
				}
				policies[name] = append(policies[name], stmt{acts, resource})
			}
		}
	}
	want := map[string][]stmt{
		"ScaleProviderPolicy": {
			{[]string{"autoscaling:DescribeAutoScalingGroups"}, "*"},
			{[]string{"autoscaling:SetDesiredCapacity", "autoscaling:SetInstanceProtection", "autoscaling:TerminateInstanceInAutoScalingGroup"}, "!Sub " + groupArn},
		},
		"ArchivePolicy": {
			{[]string{"s3:ListBucket"}, "!GetAtt ArchiveBucket.Arn"},
			{[]string{"s3:GetObject", "s3:PutObject"}, "!Sub ${ArchiveBucket.Arn}/${ArchivePrefix}/*"},
		},
		"LifecyclePolicy": {
			{[]string{"autoscaling:CompleteLifecycleAction"}, "!Sub " + groupArn},
		},
		"RedisSecretPolicy": {
			{[]string{"secretsmanager:GetSecretValue"}, "!Ref RedisUrlSecretArn"},
		},
	}
	if !reflect.DeepEqual(policies, want) {
		t.Errorf("IAM policies:\n got %+v\nwant %+v", policies, want)
	}
	for role, ps := range map[string][]string{
		"ControlRole": {"ArchivePolicy", "RedisSecretPolicy", "ScaleProviderPolicy"},
		"WorkerRole":  {"ArchivePolicy", "LifecyclePolicy", "RedisSecretPolicy"},
	} {
		got := roles[role]
		slices.Sort(got)
		if !slices.Equal(got, ps) {
			t.Errorf("%s has policies %v, want %v", role, got, ps)
		}
	}
}
