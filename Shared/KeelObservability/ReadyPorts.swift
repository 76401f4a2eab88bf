import Synchronization

/// Collects the gRPC and admin ports as each server binds; yields both once both are known.
final class ReadyPorts: Sendable {
    private let ports = Mutex<(grpc: Int?, admin: Int?)>((nil, nil))

    /// Records the gRPC port; returns both ports if the admin port is known too.
    func setGRPC(_ port: Int) -> (grpc: Int, admin: Int)? {
        ports.withLock { ports in
            ports.grpc = port
            return ports.admin.map { (port, $0) }
        }
    }

    /// Records the admin port; returns both ports if the gRPC port is known too.
    func setAdmin(_ port: Int) -> (grpc: Int, admin: Int)? {
        ports.withLock { ports in
            ports.admin = port
            return ports.grpc.map { ($0, port) }
        }
    }
}
