extension Resources {
    // MARK: Amounts by name (summed over all roles)

    /// The total of the scalar resource `name` across all roles (reserved and unreserved);
    /// 0 if absent. Filter first (e.g. ``unreserved``) to look at one role.
    package func scalar(named name: String) -> Double {
        var millis: Int64 = 0
        for resource in self where resource.name == name {
            if case .scalar(let amount) = resource.value {
                millis = FixedPoint.add(millis, FixedPoint.millis(amount))
            }
        }
        return FixedPoint.value(millis)
    }

    /// The union of the ranges resource `name` across all roles; empty if absent.
    package func ranges(named name: String) -> ValueRanges {
        var result = ValueRanges()
        for resource in self where resource.name == name {
            if case .ranges(let ranges) = resource.value {
                result = result.union(ranges)
            }
        }
        return result
    }

    /// The union of the set resource `name` across all roles; empty if absent.
    package func set(named name: String) -> Set<String> {
        var result: Set<String> = []
        for resource in self where resource.name == name {
            if case .set(let items) = resource.value {
                result.formUnion(items)
            }
        }
        return result
    }

    /// CPUs across all roles; 0 if none.
    package var cpus: Double { scalar(named: Resource.Name.cpus) }
    /// Memory in MiB across all roles; 0 if none.
    package var mem: Double { scalar(named: Resource.Name.mem) }
    /// Disk in MiB across all roles; 0 if none.
    package var disk: Double { scalar(named: Resource.Name.disk) }
    /// GPUs across all roles; 0 if none.
    package var gpus: Double { scalar(named: Resource.Name.gpus) }
    /// Ports across all roles; empty if none.
    package var ports: ValueRanges { ranges(named: Resource.Name.ports) }

    /// The distinct resource names present, e.g. `["cpus", "mem"]`.
    package var names: Set<String> { Set(map(\.name)) }

    /// The distinct roles that have reservations here (unreserved resources contribute nothing).
    package var roles: Set<String> { Set(compactMap(\.role)) }

    // MARK: Filters

    /// The entries for which `isIncluded` returns true, still normalized.
    package func filtered(_ isIncluded: (Resource) throws -> Bool) rethrows -> Resources {
        var result = Resources()
        for resource in self where try isIncluded(resource) {
            result.insert(resource, trusted: true)
        }
        return result
    }

    /// Only the unreserved entries.
    package var unreserved: Resources { filtered { $0.role == nil } }

    /// Only the reserved entries, whatever their role.
    package var reserved: Resources { filtered { $0.role != nil } }

    /// Only the entries reserved for exactly `role` (not its ancestors or descendants).
    package func reserved(role: String) -> Resources {
        filtered { $0.role == role }
    }

    /// What a framework in `role` may be offered from these resources: unreserved entries plus
    /// those reserved for `role` or any role it is nested in (for `eng/web`: `eng` and `eng/web`),
    /// as in Mesos.
    package func allocatable(to role: String) -> Resources {
        let lineage = Set(ResourceRole.lineage(of: role))
        return filtered { resource in resource.role.map { lineage.contains($0) } ?? true }
    }

    /// The same amounts with every entry moved to `role` (`nil` = unreserved); entries that now
    /// share a key are summed. Useful to compare quantities regardless of reservations.
    ///
    /// If `role` is invalid, the result is empty, because invalid resources are dropped.
    package func flattened(to role: String? = nil) -> Resources {
        var result = Resources()
        for resource in self {
            result.insert(Resource(name: resource.name, value: resource.value, role: role))
        }
        return result
    }
}
