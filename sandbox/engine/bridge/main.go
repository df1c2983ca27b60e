// The sandbox's `pulumi-language-python`: the real Python language host, with one request mended.
//
//	pulumi-language-python ENGINE_ADDRESS [flags]   (started by the Pulumi CLI, never by hand)
//
// The only Python language host the Go module proxy serves is the one in `sdk/v3` v3.68.0, older than
// the v3.260.0 CLI. One call does not survive the gap: since the host became a module of its own, the
// CLI sends RunPlugin (how it starts a Python policy pack) with the pack's folder in `info` and no
// `program`; the old host runs `python ""` in the project's folder, that is, the project's own
// `__main__.py`, and `pulumi preview --policy-pack` fails. This bridge starts the real host (built
// beside it as `pulumi-language-python-v3.68`), forwards every call to it byte for byte, and fills
// RunPlugin's `program` from `info.program_directory`, as newer hosts read it. Nothing else changes;
// the real host does all the work. The CLI starts the host twice at every `pulumi up` and preview, so
// the bridge is compiled: in Python it cost a quarter of a CPU-second at each start.
// Exit status: that of the real host; 1 when it cannot be started.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

const (
	realHostName = "pulumi-language-python-v3.68"
	runPlugin    = "/pulumirpc.LanguageRuntime/RunPlugin"
)

// rawCodec passes messages through as the bytes they are: the bridge reads none but RunPlugin's.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "pulumi-language-python (sandbox bridge): "+format+"\n", args...)
	return 1
}

// mend returns a request as the old host reads it: RunPlugin with `program` filled from `info`.
func mend(method string, request []byte) ([]byte, error) {
	if method != runPlugin {
		return request, nil
	}
	var message pulumirpc.RunPluginRequest
	if err := proto.Unmarshal(request, &message); err != nil {
		return nil, err
	}
	if message.GetProgram() == "" && message.GetInfo().GetProgramDirectory() != "" {
		message.Program = message.GetInfo().GetProgramDirectory()
	}
	return proto.Marshal(&message)
}

// forward relays one call to the real host: every LanguageRuntime method takes one request and answers
// with one message or a stream of them.
func forward(host *grpc.ClientConn) grpc.StreamHandler {
	return func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		var request []byte
		if err := stream.RecvMsg(&request); err != nil {
			return err
		}
		request, err := mend(method, request)
		if err != nil {
			return err
		}
		call, err := host.NewStream(stream.Context(), &grpc.StreamDesc{ServerStreams: true}, method)
		if err != nil {
			return err
		}
		if err := call.SendMsg(&request); err != nil {
			return err
		}
		if err := call.CloseSend(); err != nil {
			return err
		}
		for {
			var response []byte
			if err := call.RecvMsg(&response); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err // the host's status, code and message, as it gave them
			}
			if err := stream.SendMsg(&response); err != nil {
				return err
			}
		}
	}
}

func run(args []string) int {
	self, err := os.Executable()
	if err != nil {
		return fail("cannot find itself: %v", err)
	}
	realHost := filepath.Join(filepath.Dir(self), realHostName)
	host := exec.Command(realHost, args...)
	host.Stderr = os.Stderr
	// The CLI kills plugins with SIGKILL: the real host must not outlive the bridge.
	host.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	output, err := host.StdoutPipe()
	if err != nil {
		return fail("%v", err)
	}
	if err := host.Start(); err != nil {
		return fail("cannot start %s: %v", realHost, err)
	}
	lines := bufio.NewReader(output)
	first, _ := lines.ReadString('\n')
	port := strings.TrimSpace(first)
	if port == "" || strings.Trim(port, "0123456789") != "" {
		fail("%s gave no port (%q)", realHost, port)
		if err := host.Wait(); err != nil {
			var exit *exec.ExitError
			if errors.As(err, &exit) && exit.ExitCode() > 0 {
				return exit.ExitCode()
			}
		}
		return 1
	}
	// Anything more the host prints goes to stderr (the CLI's log), so a full pipe never blocks it.
	go func() { _, _ = io.Copy(os.Stderr, lines) }()

	unlimited := grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(math.MaxInt32),
		grpc.MaxCallSendMsgSize(math.MaxInt32))
	conn, err := grpc.NewClient("127.0.0.1:"+port, grpc.WithTransportCredentials(insecure.NewCredentials()), unlimited)
	if err != nil {
		_ = host.Process.Kill()
		return fail("cannot reach %s on port %s: %v", realHost, port, err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = host.Process.Kill()
		return fail("cannot listen: %v", err)
	}
	server := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(forward(conn)),
		grpc.MaxRecvMsgSize(math.MaxInt32), grpc.MaxSendMsgSize(math.MaxInt32))
	go func() { _ = server.Serve(listener) }()
	fmt.Println(listener.Addr().(*net.TCPAddr).Port)

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for received := range signals {
			_ = host.Process.Signal(received) // SIGTERM ends the host, SIGINT is its to handle
		}
	}()
	code := 0
	if err := host.Wait(); err != nil {
		code = 1
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() > 0 {
			code = exit.ExitCode()
		}
	}
	stopped := make(chan struct{})
	go func() { server.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Second):
		server.Stop()
	}
	_ = conn.Close()
	return code
}

func main() {
	os.Exit(run(os.Args[1:]))
}
