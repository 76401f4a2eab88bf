import Foundation
import KeelAPI
import Logging
import KeelCore
import KeelRPC
import SwiftProtobuf

extension BrokerState {
    /// Offers every active agent's free resources to subscribed frameworks, round-robin.
    ///
    /// This is the walking skeleton's simple fair allocator: each agent with free resources goes
    /// whole to the next framework in turn that is subscribed, not suppressed and not filtering
    /// that agent. The hierarchical DRF allocator replaces it.
    mutating func allocate(now: Date) {
        let candidates = frameworks.values
            .filter { $0.connected && !$0.completed && !$0.suppressed }
            .map(\.id)
            .sorted()
        guard !candidates.isEmpty else { return }
        var batches: [FrameworkID: [Keel_V1_Offer]] = [:]
        for agentID in agents.keys.sorted() {
            guard let agent = agents[agentID], agent.state == .active, agent.outbound != nil else { continue }
            let free = agent.free
            guard free.cpus >= 0.01 || free.mem >= 32 else { continue }
            for step in 0..<candidates.count {
                let frameworkID = candidates[(allocationCursor + step) % candidates.count]
                guard var framework = frameworks[frameworkID] else { continue }
                if let until = framework.refusals[agentID] {
                    if until > now { continue }
                    framework.refusals[agentID] = nil
                    frameworks[frameworkID] = framework
                }
                let offer = OfferEntry(
                    id: OfferID.random(), frameworkID: frameworkID, agentID: agentID, resources: free, createdAt: now
                )
                offers[offer.id] = offer
                agents[agentID]?.offered += free
                batches[frameworkID, default: []].append(.with {
                    $0.id = .with { $0.value = offer.id.value }
                    $0.frameworkID = .with { $0.value = frameworkID.value }
                    $0.agentID = .with { $0.value = agentID.value }
                    $0.hostname = agent.info.hostname
                    $0.resources = free.proto
                    $0.attributes = agent.info.attributes
                    $0.domain = agent.info.domain
                    $0.allocationInfo.role = framework.role
                    $0.createdAt = Google_Protobuf_Timestamp(date: now)
                })
                allocationCursor = (allocationCursor + step + 1) % candidates.count
                break
            }
        }
        for (frameworkID, offers) in batches {
            frameworks[frameworkID]?.outbound?.yield(.with {
                $0.type = .offers
                $0.offers.offers = offers
            })
        }
    }
}
