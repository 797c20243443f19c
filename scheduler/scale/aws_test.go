package scale_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/jinn-fleet/jinn/scheduler/scale"
)

// fakeASG speaks the EC2 Auto Scaling query API (form-encoded Action=...
// requests, XML answers) for the calls the provider makes, keeps the
// groups' state, and records every call.
type fakeASG struct {
	mu     sync.Mutex
	groups map[string]*fakeGroup
	calls  []url.Values
	fail   string // an action answered with a throttling error
}

type fakeGroup struct {
	desired, min, max int
	instances         []*fakeInstance
}

type fakeInstance struct {
	id, state string
	protected bool
}

func (f *fakeASG) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	form := r.PostForm
	f.calls = append(f.calls, form)
	action := form.Get("Action")
	fail := func(code, msg string) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>r</RequestId></ErrorResponse>`, code, msg)
	}
	reply := func(result string) {
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<%sResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><%sResult>%s</%sResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></%sResponse>`,
			action, action, result, action, action)
	}
	if action == f.fail {
		fail("Throttling", "Rate exceeded")
		return
	}
	if form.Get("Version") != "2011-01-01" {
		fail("InvalidAction", "bad version")
		return
	}
	switch action {
	case "DescribeAutoScalingGroups":
		var b strings.Builder
		b.WriteString("<AutoScalingGroups>")
		for i := 1; form.Has("AutoScalingGroupNames.member." + strconv.Itoa(i)); i++ {
			name := form.Get("AutoScalingGroupNames.member." + strconv.Itoa(i))
			g, ok := f.groups[name]
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "<member><AutoScalingGroupName>%s</AutoScalingGroupName><DesiredCapacity>%d</DesiredCapacity><MinSize>%d</MinSize><MaxSize>%d</MaxSize><Instances>",
				name, g.desired, g.min, g.max)
			for _, in := range g.instances {
				fmt.Fprintf(&b, "<member><InstanceId>%s</InstanceId><LifecycleState>%s</LifecycleState><HealthStatus>Healthy</HealthStatus><ProtectedFromScaleIn>%t</ProtectedFromScaleIn><AvailabilityZone>eu-west-1a</AvailabilityZone></member>",
					in.id, in.state, in.protected)
			}
			b.WriteString("</Instances></member>")
		}
		b.WriteString("</AutoScalingGroups>")
		reply(b.String())
	case "SetDesiredCapacity":
		g, ok := f.groups[form.Get("AutoScalingGroupName")]
		n, _ := strconv.Atoi(form.Get("DesiredCapacity"))
		if !ok || n > g.max {
			fail("ValidationError", "bad group or size")
			return
		}
		g.desired = n
		reply("")
	case "TerminateInstanceInAutoScalingGroup":
		for _, g := range f.groups {
			for _, in := range g.instances {
				if in.id == form.Get("InstanceId") {
					in.state = "Terminating"
					if form.Get("ShouldDecrementDesiredCapacity") == "true" {
						g.desired--
					}
					reply("<Activity><ActivityId>a1</ActivityId><AutoScalingGroupName>g</AutoScalingGroupName><Cause>c</Cause><StartTime>2026-01-01T00:00:00Z</StartTime><StatusCode>InProgress</StatusCode><Progress>0</Progress></Activity>")
					return
				}
			}
		}
		fail("ValidationError", "Instance Id not found - No managed instance found for instance ID: "+xmlEscape(form.Get("InstanceId")))
	case "SetInstanceProtection":
		g := f.groups[form.Get("AutoScalingGroupName")]
		for i := 1; form.Has("InstanceIds.member." + strconv.Itoa(i)); i++ {
			for _, in := range g.instances {
				if in.id == form.Get("InstanceIds.member."+strconv.Itoa(i)) {
					in.protected = form.Get("ProtectedFromScaleIn") == "true"
				}
			}
		}
		reply("")
	default:
		fail("InvalidAction", "not faked: "+action)
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// took returns the calls made since the last took, each as its form without
// Version, and forgets them.
func (f *fakeASG) took() []map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]string
	for _, c := range f.calls {
		m := map[string]string{}
		for k := range c {
			if k != "Version" {
				m[k] = c.Get(k)
			}
		}
		out = append(out, m)
	}
	f.calls = nil
	return out
}

func newAWS(t *testing.T, groups map[string]*fakeGroup) (*scale.AWS, *fakeASG) {
	t.Helper()
	fake := &fakeASG{groups: groups}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := autoscaling.New(autoscaling.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		RetryMaxAttempts: 1,
		HTTPClient:       srv.Client(),
	})
	p, err := scale.NewAWS(scale.AWSConfig{Groups: map[string]string{"default": "jinn-default", "gpu": "jinn-gpu"}, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	return p, fake
}

func describe(group string) map[string]string {
	return map[string]string{"Action": "DescribeAutoScalingGroups", "AutoScalingGroupNames.member.1": group}
}

func wantCalls(t *testing.T, fake *fakeASG, want ...map[string]string) {
	t.Helper()
	got := fake.took()
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("calls\n%v\nwant\n%v", got, want)
	}
}

func TestAWSSetDesired(t *testing.T) {
	ctx := context.Background()
	g := &fakeGroup{desired: 1, min: 1, max: 5, instances: []*fakeInstance{{id: "i-1", state: "InService"}}}
	p, fake := newAWS(t, map[string]*fakeGroup{"jinn-default": g})

	if err := p.SetDesired(ctx, "default", 3); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, fake, describe("jinn-default"),
		map[string]string{"Action": "SetDesiredCapacity", "AutoScalingGroupName": "jinn-default", "DesiredCapacity": "3", "HonorCooldown": "false"})
	if g.desired != 3 {
		t.Fatalf("group desired %d, want 3", g.desired)
	}

	// Asking again, or for fewer, changes nothing: the group would pick
	// which instance to end.
	for _, n := range []int{3, 2, 0} {
		if err := p.SetDesired(ctx, "default", n); err != nil {
			t.Fatal(err)
		}
		wantCalls(t, fake, describe("jinn-default"))
	}

	// More than the group allows: as many as it allows, and an error that
	// says what to change.
	err := p.SetDesired(ctx, "default", 9)
	if err == nil || !strings.Contains(err.Error(), "raise its MaxSize or lower --max-workers") {
		t.Fatalf("over the group's max: %v", err)
	}
	wantCalls(t, fake, describe("jinn-default"),
		map[string]string{"Action": "SetDesiredCapacity", "AutoScalingGroupName": "jinn-default", "DesiredCapacity": "5", "HonorCooldown": "false"})

	if err := p.SetDesired(ctx, "nope", 1); err == nil || !strings.Contains(err.Error(), "--asg nope=GROUP") {
		t.Fatalf("pool without a group: %v", err)
	}
	if err := p.SetDesired(ctx, "gpu", 1); err == nil || !strings.Contains(err.Error(), "jinn-gpu of pool gpu does not exist") {
		t.Fatalf("missing group: %v", err)
	}
	wantCalls(t, fake, describe("jinn-gpu"))
}

func TestAWSRemove(t *testing.T) {
	ctx := context.Background()
	g := &fakeGroup{desired: 3, min: 1, max: 5, instances: []*fakeInstance{
		{id: "i-1", state: "InService"}, {id: "i-2", state: "InService"}, {id: "i-3", state: "Terminating"},
	}}
	p, fake := newAWS(t, map[string]*fakeGroup{"jinn-default": g})
	if err := p.Remove(ctx, "default", "i-2"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, fake, describe("jinn-default"),
		map[string]string{"Action": "TerminateInstanceInAutoScalingGroup", "InstanceId": "i-2", "ShouldDecrementDesiredCapacity": "true"})
	if g.desired != 2 {
		t.Fatalf("group desired %d after removing a drained worker, want 2", g.desired)
	}
	// Removing again, or an instance already leaving or gone, calls nothing.
	for _, id := range []string{"i-2", "i-3", "i-9"} {
		if err := p.Remove(ctx, "default", id); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
		wantCalls(t, fake, describe("jinn-default"))
	}
	if g.desired != 2 {
		t.Fatalf("group desired %d, want 2", g.desired)
	}
}

func TestAWSListAndProtect(t *testing.T) {
	ctx := context.Background()
	g := &fakeGroup{desired: 4, min: 1, max: 9, instances: []*fakeInstance{
		{id: "i-1", state: "InService"}, {id: "i-2", state: "InService", protected: true},
		{id: "i-3", state: "Pending"}, {id: "i-4", state: "Terminating:Wait"},
	}}
	p, fake := newAWS(t, map[string]*fakeGroup{"jinn-default": g})
	list, err := p.List(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	want := []scale.Instance{
		{ID: "i-1", State: "InService", Live: true}, {ID: "i-2", State: "InService", Live: true, Protected: true},
		{ID: "i-3", State: "Pending", Live: true}, {ID: "i-4", State: "Terminating:Wait"},
	}
	if !reflect.DeepEqual(list, want) {
		t.Fatalf("list\n%+v\nwant\n%+v", list, want)
	}
	wantCalls(t, fake, describe("jinn-default"))

	// i-1 took a job, i-2 finished its last, i-5 is not in the group yet.
	if err := p.Protect(ctx, "default", map[string]bool{"i-1": true, "i-2": false, "i-3": false, "i-5": true}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, fake,
		map[string]string{"Action": "SetInstanceProtection", "AutoScalingGroupName": "jinn-default", "InstanceIds.member.1": "i-1", "ProtectedFromScaleIn": "true"},
		map[string]string{"Action": "SetInstanceProtection", "AutoScalingGroupName": "jinn-default", "InstanceIds.member.1": "i-2", "ProtectedFromScaleIn": "false"})
	if !g.instances[0].protected || g.instances[1].protected {
		t.Fatalf("protection i-1 %t i-2 %t, want true and false", g.instances[0].protected, g.instances[1].protected)
	}
	// Nothing changed: nothing to call.
	if err := p.Protect(ctx, "default", map[string]bool{"i-1": true, "i-2": false}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, fake)
}

func TestAWSProtectBatches(t *testing.T) {
	ctx := context.Background()
	g := &fakeGroup{desired: 120, max: 200}
	busy := map[string]bool{}
	for i := range 120 {
		id := fmt.Sprintf("i-%03d", i)
		g.instances = append(g.instances, &fakeInstance{id: id, state: "InService"})
		busy[id] = true
	}
	p, fake := newAWS(t, map[string]*fakeGroup{"jinn-default": g})
	if err := p.Protect(ctx, "default", busy); err != nil {
		t.Fatal(err)
	}
	calls := fake.took()
	if len(calls) != 4 || calls[0]["Action"] != "DescribeAutoScalingGroups" {
		t.Fatalf("%d calls (%v), want a describe and 3 protections", len(calls), calls[0])
	}
	var ids []string
	for i, c := range calls[1:] {
		n := 0
		for k, v := range c {
			if strings.HasPrefix(k, "InstanceIds.member.") {
				n++
				ids = append(ids, v)
			}
		}
		if wantN := []int{50, 50, 20}[i]; n != wantN || c["ProtectedFromScaleIn"] != "true" {
			t.Fatalf("call %d names %d instances (%v), want %d", i+1, n, c["ProtectedFromScaleIn"], wantN)
		}
	}
	sort.Strings(ids)
	if len(ids) != 120 || ids[0] != "i-000" || ids[119] != "i-119" {
		t.Fatalf("protected %d instances", len(ids))
	}
}

func TestAWSErrors(t *testing.T) {
	g := &fakeGroup{desired: 1, max: 3, instances: []*fakeInstance{{id: "i-1", state: "InService"}}}
	p, fake := newAWS(t, map[string]*fakeGroup{"jinn-default": g})
	fake.mu.Lock()
	fake.fail = "TerminateInstanceInAutoScalingGroup"
	fake.mu.Unlock()
	err := p.Remove(context.Background(), "default", "i-1")
	if err == nil || !strings.Contains(err.Error(), "terminate instance i-1 of group jinn-default") || !strings.Contains(err.Error(), "Throttling") {
		t.Fatalf("a failed terminate: %v", err)
	}
	if _, err := scale.NewAWS(scale.AWSConfig{Client: &autoscaling.Client{}}); err == nil {
		t.Fatal("an aws provider without groups")
	}
}
