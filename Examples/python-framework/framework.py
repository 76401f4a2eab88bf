#!/usr/bin/env python3
"""A Keel framework in Python: registers, launches one task, acknowledges its updates and
exits with the task's exit code.

It talks to Keel over plain gRPC with stubs generated from Protos/ by grpcio-tools, to show
that the API needs no Swift:

    pip install grpcio grpcio-tools
    python3 Examples/python-framework/framework.py -- echo hello

Options: --registry HOST:PORT (default 127.0.0.1:5052), --broker HOST:PORT (127.0.0.1:5050),
--cpus (0.1), --mem (32). States go to stderr as they arrive.
"""

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTOS = os.path.join(ROOT, "Protos")


def load_stubs():
    """Generates the Python stubs for keel.v1 into a temporary folder and imports them."""
    out = tempfile.mkdtemp(prefix="keel-python-stubs-")
    protos = [os.path.join("keel", "v1", name) for name in sorted(os.listdir(os.path.join(PROTOS, "keel", "v1")))]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTOS, "--python_out", out, "--grpc_python_out", out]
        + protos,
        check=True,
    )
    sys.path.insert(0, out)
    modules = {}
    for name in ["common", "task", "scheduler", "registry"]:
        modules[name] = importlib.import_module(f"keel.v1.{name}_pb2")
    modules["scheduler_grpc"] = importlib.import_module("keel.v1.scheduler_pb2_grpc")
    modules["registry_grpc"] = importlib.import_module("keel.v1.registry_pb2_grpc")
    return modules


def scalar(common, name, value):
    return common.Resource(name=name, type=common.Value.SCALAR, scalar=common.Value.Scalar(value=value))


def offered(offer, name):
    return sum(r.scalar.value for r in offer.resources if r.name == name and r.type == 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default=os.environ.get("KEEL_REGISTRY", "127.0.0.1:5052"))
    parser.add_argument("--broker", default=os.environ.get("KEEL_BROKER", "127.0.0.1:5050"))
    parser.add_argument("--cpus", type=float, default=0.1)
    parser.add_argument("--mem", type=float, default=32)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given: framework.py -- COMMAND [ARGS...]")

    import grpc

    pb = load_stubs()
    common, task_pb, scheduler, registry = pb["common"], pb["task"], pb["scheduler"], pb["registry"]

    registration = pb["registry_grpc"].RegistryStub(grpc.insecure_channel(args.registry)).RegisterFramework(
        registry.RegisterFrameworkRequest(
            framework_info=scheduler.FrameworkInfo(name="python example", user="root", roles=["*"])
        )
    )
    framework_id = registration.framework_id
    auth = [("authorization", "Bearer " + registration.token)]
    broker = pb["scheduler_grpc"].SchedulerStub(grpc.insecure_channel(args.broker))
    print(f"python: registered as {framework_id.value}", file=sys.stderr)

    task_id = "python-" + uuid.uuid4().hex[:8]
    launched = False
    exit_code = 1
    events = broker.Subscribe(
        scheduler.SubscribeRequest(framework_info=scheduler.FrameworkInfo(id=framework_id)), metadata=auth
    )
    for event in events:
        if event.type == scheduler.Event.OFFERS:
            for offer in event.offers.offers:
                fits = offered(offer, "cpus") >= args.cpus and offered(offer, "mem") >= args.mem
                if not launched and fits:
                    info = task_pb.TaskInfo(
                        name="python-task",
                        task_id=common.TaskID(value=task_id),
                        agent_id=offer.agent_id,
                        resources=[scalar(common, "cpus", args.cpus), scalar(common, "mem", args.mem)],
                        command=task_pb.CommandInfo(argv=task_pb.CommandInfo.Argv(args=command)),
                    )
                    broker.Accept(
                        scheduler.AcceptRequest(
                            framework_id=framework_id,
                            offer_ids=[offer.id],
                            operations=[
                                scheduler.Offer.Operation(
                                    type=scheduler.Offer.Operation.LAUNCH,
                                    launch=scheduler.Offer.Operation.Launch(task_infos=[info]),
                                )
                            ],
                        ),
                        metadata=auth,
                    )
                    launched = True
                    print(f"python: launched {task_id}", file=sys.stderr)
                else:
                    broker.Decline(
                        scheduler.DeclineRequest(
                            framework_id=framework_id,
                            offer_ids=[offer.id],
                            filters=scheduler.Filters(refuse_seconds=60),
                        ),
                        metadata=auth,
                    )
        elif event.type == scheduler.Event.UPDATE:
            status = event.update.status
            state = task_pb.TaskState.Name(status.state)
            print(f"python: {status.task_id.value} is {state}: {status.message}", file=sys.stderr)
            if status.uuid:
                broker.Acknowledge(
                    scheduler.AcknowledgeRequest(
                        framework_id=framework_id,
                        agent_id=status.agent_id,
                        task_id=status.task_id,
                        uuid=status.uuid,
                    ),
                    metadata=auth,
                )
            if status.state in (task_pb.TASK_FINISHED, task_pb.TASK_FAILED, task_pb.TASK_KILLED,
                                task_pb.TASK_ERROR, task_pb.TASK_LOST, task_pb.TASK_DROPPED):
                exit_code = status.exit_code if status.HasField("exit_code") else (0 if state == "TASK_FINISHED" else 1)
                break
    events.cancel()
    broker.Teardown(scheduler.TeardownRequest(framework_id=framework_id), metadata=auth)
    print(f"python: done, exit code {exit_code}", file=sys.stderr)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
