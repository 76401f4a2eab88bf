import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import KeelAPI
import KeelRPC
import Logging
import SwiftProtobuf
import Synchronization

/// Keeps a framework subscribed: subscribes, turns the broker's events into ``SchedulerEvent``s,
/// reconciles and acknowledges, and when the subscription breaks, subscribes again with the same
/// framework id after a jittered backoff, following leader redirects. Ends the event sequence with
/// a ``SchedulerError`` when it must not go on.
struct SubscriptionLoop: Sendable {
    let frameworkInfo: Keel_V1_FrameworkInfo
    let broker: KeelRPC.Endpoint
    let policy: ReconnectPolicy
    let automaticAcknowledgement: Bool
    let reconcileOnSubscribe: Bool
    let tokens: TokenRefresher
    let link: BrokerLink
    let acknowledged: AcknowledgedUpdates
    /// The automatic acknowledgements of the subscription in progress.
    let acknowledgements = CurrentAcknowledgements()
    let events: AsyncThrowingStream<SchedulerEvent, any Error>.Continuation
    /// Finished at the first SUBSCRIBED, or with the error that prevented it.
    let firstSubscription: AsyncThrowingStream<Void, any Error>.Continuation
    let logger: Logger

    /// How many redirects in a row are followed at once; more are spaced by the backoff.
    private static let immediateRedirects = 3
    /// How many missed heartbeats mean the subscription is dead although its stream is open.
    private static let missedHeartbeats = 3

    private enum Outcome {
        case broke(reason: String, cause: (any Error)?)
        case redirected(KeelRPC.Endpoint)
        case unauthenticated(any Error)
        case fatal(SchedulerError)
        case cancelled
    }

    /// Counters that live across attempts and brokers.
    private struct Progress {
        var subscriptions = 0
        var failures = 0
        var redirects = 0
        var renewedForAuthentication = false
    }

    /// Runs until cancelled or until the subscription ends for good.
    func run() async {
        var endpoint = broker
        var progress = Progress()
        var generator = SystemRandomNumberGenerator()
        var finalError: (any Error)?
        while !Task.isCancelled {
            do {
                // The body returns how the loop goes on rather than throwing: a throw would
                // cancel the client's connections at once, cutting off a session call still in
                // flight (a teardown whose ERROR event ended the subscription before its reply
                // came); a return shuts the client down gracefully, letting such calls finish.
                let next: Next = try await withKeelClient(
                    endpoint, token: { [tokens] in tokens.token }, streamID: { [link] in link.streamID }
                ) { client in
                    let scheduler = Keel_V1_Scheduler.Client(wrapping: client)
                    let generation = link.use(scheduler)
                    defer { link.clear(generation) }
                    do {
                        return try await subscribe(scheduler, endpoint: endpoint, progress: &progress, generator: &generator)
                    } catch let error as SchedulerError {
                        return .end(error)
                    }
                }
                switch next {
                case .stop:
                    break
                case .follow(let leader):
                    endpoint = leader
                    continue
                case .end(let error):
                    finalError = error
                }
                break
            } catch is CancellationError {
                break
            } catch let error as SchedulerError {
                finalError = error
                break
            } catch {
                if Task.isCancelled { break }
                finalError = SchedulerError(code: .invalidConfiguration, message: "cannot connect to broker \(endpoint)", cause: error)
                break
            }
        }
        if let finalError {
            logger.error("the subscription ended", metadata: ["keel.error": "\(finalError)"])
            events.finish(throwing: finalError)
            firstSubscription.finish(throwing: finalError)
        } else {
            events.finish()
            firstSubscription.finish(throwing: CancellationError())
        }
    }

    /// How the loop goes on after a broker's client is closed.
    private enum Next {
        /// Cancelled: end the events without an error.
        case stop
        /// Subscribe at the leader the broker redirected to.
        case follow(KeelRPC.Endpoint)
        /// End the events with this error.
        case end(SchedulerError)
    }

    /// Subscribes through one broker's client, again after each break, until the loop must move
    /// to another broker or end.
    private func subscribe(
        _ scheduler: BrokerLink.Scheduler, endpoint: KeelRPC.Endpoint, progress: inout Progress,
        generator: inout SystemRandomNumberGenerator
    ) async throws -> Next {
        while !Task.isCancelled {
            let (outcome, subscribed) = await attempt(scheduler, endpoint: endpoint, number: progress.subscriptions + 1)
            if subscribed {
                progress.subscriptions += 1
                progress.failures = 0
                progress.redirects = 0
                progress.renewedForAuthentication = false
            }
            switch outcome {
            case .cancelled:
                return .stop
            case .fatal(let error):
                throw error
            case .redirected(let leader):
                progress.redirects += 1
                logger.notice("the broker is not the leader; following the redirect", metadata: [
                    "keel.broker": "\(endpoint)", "keel.leader": "\(leader)",
                ])
                if progress.redirects > Self.immediateRedirects {
                    try await backOff(&progress, reason: "redirected \(progress.redirects) times in a row", generator: &generator)
                }
                return .follow(leader)
            case .unauthenticated(let error):
                guard !progress.renewedForAuthentication else {
                    throw SchedulerError(
                        code: .unauthenticated,
                        message: "the broker refused the framework's token even after it was renewed; check the registry's and broker's keys and the credential",
                        cause: error
                    )
                }
                progress.renewedForAuthentication = true
                logger.notice("the broker refused the token; renewing it", metadata: ["keel.error": "\(error)"])
                await tokens.renewNow()
            case .broke(let reason, let cause):
                if subscribed {
                    events.yield(.disconnected(Disconnection(reason: reason, cause: cause, broker: endpoint.description)))
                }
                try await backOff(&progress, reason: reason, generator: &generator)
            }
        }
        return .stop
    }

    /// Counts a failed attempt and sleeps before the next one.
    private func backOff(
        _ progress: inout Progress, reason: String, generator: inout SystemRandomNumberGenerator
    ) async throws {
        progress.failures += 1
        if let limit = policy.maxConsecutiveFailures, progress.failures >= limit {
            throw SchedulerError(
                code: .reconnectLimitReached,
                message: "could not subscribe in \(progress.failures) attempts (last: \(reason)); is the broker running at the configured address?"
            )
        }
        let delay = policy.delay(attempt: progress.failures - 1, using: &generator)
        logger.info("resubscribing after a delay", metadata: [
            "keel.reason": "\(reason)", "keel.attempt": "\(progress.failures)", "keel.retry_in": "\(delay)",
        ])
        try await Task.sleep(for: delay)
    }

    /// One subscription, from the call until its stream ends; says whether SUBSCRIBED arrived.
    private func attempt(
        _ scheduler: BrokerLink.Scheduler, endpoint: KeelRPC.Endpoint, number: Int
    ) async -> (Outcome, subscribed: Bool) {
        let state = AttemptState()
        let acknowledgements = AcknowledgementBatcher()
        self.acknowledgements.set(acknowledgements)
        defer { self.acknowledgements.set(nil) }
        let request = Keel_V1_SubscribeRequest.with {
            $0.frameworkInfo = frameworkInfo
            $0.acceptsUpdateBatches = true
        }
        do {
            try await scheduler.subscribe(request) { response in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await event in response.messages {
                            state.touch()
                            try await handle(
                                event, scheduler: scheduler, endpoint: endpoint, number: number, state: state,
                                acknowledgements: acknowledgements)
                        }
                    }
                    group.addTask { try await watchHeartbeats(state) }
                    // Runs until the attempt ends and cancels it.
                    group.addTask { await sendAcknowledgements(acknowledgements, scheduler: scheduler) }
                    defer { group.cancelAll() }
                    _ = try await group.next()
                }
            }
            return (.broke(reason: "the broker closed the subscription", cause: nil), state.subscribed)
        } catch let error as SchedulerError {
            return (.fatal(error), state.subscribed)
        } catch {
            if Task.isCancelled { return (.cancelled, state.subscribed) }
            return (classify(error), state.subscribed)
        }
    }

    /// What an error that ended an attempt means for the next one.
    private func classify(_ error: any Error) -> Outcome {
        if let leader = LeaderRedirect.leader(in: error) { return .redirected(leader) }
        guard let error = error as? RPCError else {
            return .broke(reason: "the subscription failed: \(error)", cause: error)
        }
        switch error.code {
        case .permissionDenied:
            return .fatal(SchedulerError(code: .permissionDenied, message: error.message, cause: error))
        case .invalidArgument:
            return .fatal(SchedulerError(code: .invalidArgument, message: error.message, cause: error))
        case .failedPrecondition, .notFound:
            return .fatal(SchedulerError(code: .frameworkRemoved, message: error.message, cause: error))
        case .unauthenticated:
            return .unauthenticated(error)
        default:
            return .broke(reason: "\(error.code): \(error.message)", cause: error)
        }
    }

    /// Passes one broker event on, with the driver's own work for it.
    private func handle(
        _ event: Keel_V1_Event, scheduler: BrokerLink.Scheduler, endpoint: KeelRPC.Endpoint, number: Int,
        state: AttemptState, acknowledgements: AcknowledgementBatcher
    ) async throws {
        switch event.type {
        case .subscribed:
            let interval = Duration.seconds(event.subscribed.heartbeatInterval.seconds)
            state.subscribed(heartbeatInterval: interval)
            let id = event.subscribed.frameworkID.value.isEmpty ? frameworkInfo.id : event.subscribed.frameworkID
            link.streamID = event.subscribed.streamID.isEmpty ? nil : event.subscribed.streamID
            logger.info("subscribed", metadata: ["keel.framework_id": "\(id.value)", "keel.broker": "\(endpoint)"])
            events.yield(.subscribed(Subscription(
                frameworkID: id, heartbeatInterval: interval, broker: endpoint.description, number: number
            )))
            firstSubscription.finish()
            if reconcileOnSubscribe {
                do {
                    _ = try await scheduler.reconcile(.with { $0.frameworkID = id })
                } catch {
                    logger.warning("implicit reconciliation failed", metadata: ["keel.error": "\(error)"])
                }
            }
        case .offers:
            events.yield(.offers(event.offers.offers))
        case .rescind:
            events.yield(.rescind(event.rescind.offerID))
        case .update:
            deliver([event.update.status], acknowledgements: acknowledgements)
        case .updates:
            deliver(event.updates.statuses, acknowledgements: acknowledgements)
        case .message:
            events.yield(.message(event.message))
        case .failure:
            events.yield(.failure(event.failure))
        case .error:
            throw SchedulerError(code: .terminatedByBroker, message: event.error.message)
        case .heartbeat, .unspecified, .UNRECOGNIZED:
            break
        }
    }

    /// Passes status updates on, queueing their automatic acknowledgements together.
    private func deliver(_ statuses: [Keel_V1_TaskStatus], acknowledgements: AcknowledgementBatcher) {
        if automaticAcknowledgement {
            let acknowledgeable = statuses.filter { !$0.uuid.isEmpty }
            for status in acknowledgeable { acknowledged.insert(Array(status.uuid)) }
            acknowledgements.add(acknowledgeable)
        }
        for status in statuses { events.yield(.update(status)) }
    }

    /// Sends the automatic acknowledgements of this subscription, many per call.
    private func sendAcknowledgements(_ acknowledgements: AcknowledgementBatcher, scheduler: BrokerLink.Scheduler) async {
        let frameworkID = frameworkInfo.id
        await acknowledgements.run(
            send: { batch in
                try await scheduler.acknowledge(.with {
                    $0.frameworkID = frameworkID
                    $0.acknowledgements = batch
                }).refused
            },
            failed: { [logger] count, error in
                // The launcher resends those updates, and they are acknowledged then.
                logger.warning("automatic acknowledgement failed", metadata: [
                    "keel.updates": "\(count)", "keel.error": "\(error)",
                ])
            },
            refused: { [logger] refusals in
                logger.warning("the broker refused automatic acknowledgements", metadata: [
                    "keel.refused": "\(refusals.count)", "keel.first": "\(refusals[0])",
                ])
            })
    }

    /// Throws once the broker has been silent for several heartbeat intervals.
    private func watchHeartbeats(_ state: AttemptState) async throws {
        while true {
            try await Task.sleep(for: .milliseconds(500))
            guard let interval = state.heartbeatInterval, interval > .zero else { continue }
            let silence = state.silence
            if silence > interval * Self.missedHeartbeats {
                throw RPCError(
                    code: .unavailable,
                    message: "no event or heartbeat from the broker for \(silence) (heartbeat interval \(interval))"
                )
            }
        }
    }
}

/// What one subscription attempt has seen, shared by its reader and its heartbeat watch.
private final class AttemptState: Sendable {
    private struct Value {
        var subscribed = false
        var heartbeatInterval: Duration?
        var lastEvent = ContinuousClock.now
    }

    private let value = Mutex(Value())

    var subscribed: Bool { value.withLock { $0.subscribed } }
    var heartbeatInterval: Duration? { value.withLock { $0.heartbeatInterval } }
    var silence: Duration { ContinuousClock.now - value.withLock { $0.lastEvent } }

    func touch() {
        value.withLock { $0.lastEvent = .now }
    }

    func subscribed(heartbeatInterval: Duration) {
        value.withLock {
            $0.subscribed = true
            $0.heartbeatInterval = heartbeatInterval
        }
    }
}
