// sfd-go: a small example command built on the Go client (package sfd).
//
//	sfd-go [--socket=PATH | --address=HOST:PORT [--token_file=F]] submit JOB.yaml [--follow]
//	sfd-go [connection flags] follow JOB_ID
//	sfd-go [connection flags] get JOB_ID
//
// submit prints the new job's id; --follow and follow print one line per event and exit 0 when
// the job SUCCEEDED, 1 when it ended otherwise or the daemon refused the call (its status code
// and message are printed), 2 on usage errors.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"sfd/client/go/sfd"
	"sfd/client/go/sfdv1"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage: sfd-go [--socket=PATH | --address=HOST:PORT [--token_file=F]] COMMAND
  submit JOB.yaml [--follow]   create a job (prints its id); --follow: follow it to the end
  follow JOB_ID                print the job's events until it ends
  get JOB_ID                   print the job as JSON (proto field names)`)
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sfd-go:", err)
	os.Exit(1)
}

// eventLine renders one event as a single human-readable line.
func eventLine(ev *sfdv1.JobEvent) string {
	switch k := ev.Kind.(type) {
	case *sfdv1.JobEvent_State:
		return fmt.Sprintf("#%d state %s %s", ev.Seq, k.State.State, k.State.Reason)
	case *sfdv1.JobEvent_Started:
		return fmt.Sprintf("#%d started attempt %d: %d steps, plan %s", ev.Seq, k.Started.Attempt,
			k.Started.DataStats.GetTotalSteps(), k.Started.Plan.GetSummary())
	case *sfdv1.JobEvent_Step:
		s := k.Step
		tps := 0.0
		if s.StepSeconds > 0 {
			tps = float64(s.Tokens) / s.StepSeconds
		}
		return fmt.Sprintf("#%d step %d/%d loss %.4f lr %.3g grad_norm %.3f tokens/s %.0f",
			ev.Seq, s.Step, s.TotalSteps, s.Loss, s.Lr, s.GradNorm, tps)
	case *sfdv1.JobEvent_Eval:
		return fmt.Sprintf("#%d eval step %d loss %.4f", ev.Seq, k.Eval.Step, k.Eval.EvalLoss)
	case *sfdv1.JobEvent_Checkpoint:
		return fmt.Sprintf("#%d checkpoint step %d final=%v %s", ev.Seq, k.Checkpoint.Step,
			k.Checkpoint.Final, k.Checkpoint.Path)
	case *sfdv1.JobEvent_Log:
		return fmt.Sprintf("#%d log [%s] %s", ev.Seq, k.Log.Source, k.Log.Message)
	case *sfdv1.JobEvent_Error:
		return fmt.Sprintf("#%d error %s: %s", ev.Seq, k.Error.Code, k.Error.Message)
	}
	return fmt.Sprintf("#%d (unknown event)", ev.Seq)
}

// follow prints the events and exits 0 only if the job SUCCEEDED.
func follow(ctx context.Context, c *sfd.Client, id string) {
	err := c.Follow(ctx, id, 0, func(ev *sfdv1.JobEvent) error {
		fmt.Println(eventLine(ev))
		return nil
	})
	if err != nil {
		fail(err)
	}
	job, err := c.Get(ctx, id)
	if err != nil {
		fail(err)
	}
	fmt.Printf("job %s %s", id, job.State)
	if job.State == sfdv1.JobState_FAILED {
		fmt.Printf(" (%s: %s)", job.ErrorCode, job.ErrorMessage)
	}
	if job.FinalModelDir != "" {
		fmt.Printf("; final model in %s", job.FinalModelDir)
	}
	fmt.Println()
	if job.State != sfdv1.JobState_SUCCEEDED {
		os.Exit(1)
	}
}

func main() {
	var o sfd.Options
	var tokenFile string
	flag.StringVar(&o.Socket, "socket", "", "Unix socket of sfd (default $SFD_SOCKET, else sfd-state/sfd.sock)")
	flag.StringVar(&o.Address, "address", os.Getenv("SFD_ADDRESS"), "host:port of sfd's TCP listener")
	flag.StringVar(&tokenFile, "token_file", os.Getenv("SFD_TOKEN_FILE"), "file with the bearer token (TCP)")
	flag.StringVar(&o.TLSCA, "tls_ca", "", "PEM CA of the server certificate (TCP with TLS)")
	flag.Usage = usage
	flag.Parse()
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			fail(err)
		}
		o.Token = strings.TrimSpace(string(b))
	} else {
		o.Token = os.Getenv("SFD_TOKEN")
	}
	args := flag.Args()
	if len(args) < 2 {
		usage()
	}
	ctx := context.Background()
	c, err := sfd.Dial(ctx, o)
	if err != nil {
		fail(err)
	}
	defer c.Close()

	switch args[0] {
	case "submit":
		sub := flag.NewFlagSet("submit", flag.ExitOnError)
		doFollow := sub.Bool("follow", false, "follow the job until it ends")
		requestID := sub.String("request_id", "", "idempotency key")
		path := args[1]
		if err := sub.Parse(args[2:]); err != nil || sub.NArg() != 0 {
			usage()
		}
		text, err := os.ReadFile(path)
		if err != nil {
			fail(err)
		}
		job, err := c.Submit(ctx, string(text), *requestID)
		if err != nil {
			fail(err)
		}
		fmt.Println(job.Id)
		if *doFollow {
			follow(ctx, c, job.Id)
		}
	case "follow":
		follow(ctx, c, args[1])
	case "get":
		job, err := c.Get(ctx, args[1])
		if err != nil {
			fail(err)
		}
		// Proto field names, as sfctl --json prints them.
		fmt.Println(protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Format(job))
	default:
		usage()
	}
}
