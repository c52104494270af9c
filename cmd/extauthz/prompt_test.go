//go:build linux

package main

import (
	"bytes"
	"crypto/hmac"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/extauthz/extauthz/internal/testkit"
	"golang.org/x/sys/unix"
)

// TestServiceAccountPromptOnTerminalDoesNotEcho types the secret at the prompt
// on a real pseudo-terminal, as a user at a shell would. A terminal echoes
// what is typed unless the program turns echo off, so the secret showing up
// in what the terminal displays means it would stay on screen (and in any
// recording of it).
func TestServiceAccountPromptOnTerminalDoesNotEcho(t *testing.T) {
	secret := testkit.Secret(t)
	for _, bin := range []string{binExtauthz, binPomeriumCLI} {
		t.Run("the secret typed at "+bin[strings.LastIndexByte(bin, '/')+1:]+"'s prompt is not echoed and the token is printed", func(t *testing.T) {
			ptmx, tty, err := pty.Open()
			if err != nil {
				t.Skipf("no pseudo-terminal here: %v", err)
			}
			defer ptmx.Close()
			args := []string{"-email", "bob@corp.example", "-sub", "bob", "-aud", "app.example.com", "-iss", "authenticate.example.com"}
			if bin == binExtauthz {
				args = append([]string{"service-account"}, args...)
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = baseEnv(nil)
			var stdout bytes.Buffer
			// The token goes to a pipe so that the terminal shows only the
			// prompt and whatever the terminal itself echoes.
			cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &stdout, tty
			if err := cmd.Start(); err != nil {
				tty.Close()
				t.Fatal(err)
			}
			tty.Close() // the child holds its own copy

			var screen testkit.SyncBuffer
			copied := make(chan struct{})
			go func() {
				defer close(copied)
				_, _ = io.Copy(&screen, ptmx) // ends with EIO once the child exits
			}()
			waitFor(t, &screen, secretPrompt)
			// The prompt is written before echo is turned off: typing in
			// between would be echoed whatever the program does. Wait for
			// the terminal to stop echoing (master and slave share their
			// settings), or a while: a program that leaves echo on then
			// shows the secret, and the test fails below.
			waitEchoOff(ptmx)
			if _, err := ptmx.Write([]byte(secret + "\r")); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("service-account failed: %v\nterminal: %q\nstdout: %q", err, screen.String(), stdout.String())
				}
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("service-account did not finish after the secret was typed; terminal: %q", screen.String())
			}
			ptmx.Close()
			<-copied

			if strings.Contains(screen.String(), secret) {
				t.Errorf("the typed secret was echoed on the terminal: %q", screen.String())
			}
			tok := strings.TrimSuffix(stdout.String(), "\n")
			jwt := splitJWS(t, tok)
			if !hmac.Equal(jwt.signature, jwt.hs256([]byte(secret))) {
				t.Errorf("the printed token does not verify with the typed secret: %q", tok)
			}
		})
	}
}

// waitEchoOff waits up to two seconds for the terminal's echo to be off.
func waitEchoOff(ptmx *os.File) {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS)
		if err != nil || st.Lflag&unix.ECHO == 0 {
			return
		}
	}
}

// waitFor waits until the terminal has shown want.
func waitFor(t *testing.T, screen *testkit.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(screen.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q; it shows %q", want, screen.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
