// Command profserver is extauthz's Check path with a CPU profile: the config
// is loaded and compiled by the same packages `extauthz serve` uses
// (config.Load, reload.Build, check.New, check.ServerOptions), and
// the profile is written when it is stopped (SIGTERM or SIGINT). The runner
// loads it like the real binary to show where our server's CPU goes, gRPC
// transport included; the measurements themselves always use the real binary.
//
// The profile starts -after a while (the runner's warm-up), so that it
// shows the steady state the measured runs see.
//
//	profserver -config extauthz.yaml -cpuprofile cpu.prof -after 1s
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/reload"
)

func main() {
	cfgPath := flag.String("config", "", "extauthz config file")
	profile := flag.String("cpuprofile", "cpu.prof", "where to write the CPU profile")
	after := flag.Duration("after", 0, "start profiling this long after serving starts")
	flag.Parse()
	if err := run(*cfgPath, *profile, *after); err != nil {
		fmt.Fprintln(os.Stderr, "profserver:", err)
		os.Exit(1)
	}
}

func run(cfgPath, profile string, after time.Duration) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	snap, _, err := reload.Build(cfg)
	if err != nil {
		return err
	}
	log, err := zap.Config{
		Level: zap.NewAtomicLevelAt(zapcore.WarnLevel), Encoding: "json",
		EncoderConfig: zap.NewProductionEncoderConfig(), OutputPaths: []string{"stderr"}, ErrorOutputPaths: []string{"stderr"},
	}.Build()
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.GRPCAddress)
	if err != nil {
		return err
	}
	g := grpc.NewServer(check.ServerOptions()...)
	check.New(snap, log).Register(g)

	f, err := os.Create(profile)
	if err != nil {
		return err
	}
	started := make(chan error, 1)
	timer := time.AfterFunc(after, func() { started <- pprof.StartCPUProfile(f) })
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; g.Stop() }()
	serveErr := g.Serve(lis)
	if timer.Stop() {
		return fmt.Errorf("stopped before the profile started (-after %s)", after)
	}
	if err := <-started; err != nil {
		return err
	}
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		return err
	}
	return serveErr
}
