#!/usr/bin/env node
// An independent OCPP CSMS for the tests, on ocpp-rpc's RPCServer in strict mode: ocpp-rpc validates every CALL
// the station sends and every CALLRESULT it returns (and everything this peer sends) against its own copies of the
// OCPP 2.0.1 and 1.6 JSON schemas. One stricter rule is added on top: a date-time must carry a UTC offset (ajv-formats
// 2.x, which ocpp-rpc uses, accepts "2026-12-06T10:00:00" without one; RFC 3339 and OCPP do not).
//
// Usage: node csms.js PORT [--host 127.0.0.1] [--password SECRET] [--next-transaction-id N]   (PORT 0: pick a free one)
// 1.6 StartTransaction answers count transactionIds up from N (default 1): a restarted peer given the next one goes
// on where it stopped, as a CSMS with a database does, so a station's transactions never share an id.
// Stations connect to ws://HOST:PORT/ocpp/<identity> with the subprotocol ocpp2.0.1 or ocpp1.6.
//
// Control: one JSON object per line. stdout (events):
//   {"event":"listening","port":N,"strictDatetime":true}
//   {"event":"connected","identity":..,"protocol":..}  {"event":"disconnected","identity":..,"code":..,"reason":..}
//   {"event":"rejected","status":400|401|404,"reason":..,"identity":..}
//   {"event":"call","identity":..,"protocol":..,"messageId":..,"action":..,"params":{..},"response":{..}|null,
//    "error":{"code":..,"message":..}|null}          (every valid CALL from a station, with what this peer answered)
//   {"event":"validation_error","identity":..,"action":..,"messageId":..,"outbound":bool,"isCall":bool,
//    "params":..,"result":..,"code":..,"message":..}  (ocpp-rpc's strictValidationFailure)
//   {"event":"bad_message","identity":..,"message":..,"error":..}
//   {"event":"result","id":..,"result":{..}}  {"event":"error","id":..,"code":..,"message":..,"details":..}
//   {"event":"ack","id":..,"cmd":..}  {"event":"warning","message":..}
// stdin (commands; every one with an "id" is answered by an ack, a call by its result or error):
//   {"cmd":"call","id":"c1","action":"ReserveNow","params":{..},"identity":..?,"timeoutMs":..?}
//   {"cmd":"disconnect","identity":..?,"code":1001?,"force":false?}
//   {"cmd":"boot_status","status":"Accepted"|"Pending"|"Rejected","interval":N?}
//   {"cmd":"authorize","idToken":..,"status":"Accepted",.."groupIdToken":..?}
//   {"cmd":"respond","action":..,"result":{..}} | {"cmd":"respond","action":..,"error":{"code":..,"message":..}}
//   {"cmd":"respond","action":..} (back to the default answer)      {"cmd":"stop"} (also on stdin EOF)
'use strict';

const readline = require('node:readline');
const { RPCServer, createRPCError } = require('ocpp-rpc');
const standardValidators = require('ocpp-rpc/lib/standard-validators');

const PROTOCOLS = ['ocpp2.0.1', 'ocpp1.6'];
const ENDPOINT = '/ocpp';

function emit(event) {
    process.stdout.write(JSON.stringify(event) + '\n');
}

function parseArgs(argv) {
    const options = { port: 0, host: '127.0.0.1', password: null, nextTransactionId: 1 };
    const rest = [...argv];
    while (rest.length) {
        const arg = rest.shift();
        if (arg === '--host') options.host = rest.shift();
        else if (arg === '--password') options.password = rest.shift();
        else if (arg === '--next-transaction-id') options.nextTransactionId = Number(rest.shift());
        else options.port = Number(arg);
    }
    return options;
}

// RFC 3339 date-time, offset required ("Z" or "+hh:mm").
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$/;
function isDateTimeWithOffset(text) {
    const m = DATE_TIME.exec(text);
    if (!m) return false;
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
    const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
    const offsetOk = m[9] === undefined || (Number(m[9]) < 24 && Number(m[10]) < 60);
    return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour < 24 && minute < 60
        && second <= 60 && offsetOk;
}

// Tighten the date-time format of ocpp-rpc's own validators (ajv compiles schemas lazily, on first use, so this
// applies to every schema). Checked right away; reported in the "listening" event.
function tightenDateTime() {
    let strict = true;
    for (const protocol of PROTOCOLS) {
        const validator = standardValidators.find(v => v.subprotocol === protocol);
        if (!validator || !validator._ajv || typeof validator._ajv.addFormat !== 'function') {
            emit({ event: 'warning', message: `cannot tighten date-time for ${protocol}: ocpp-rpc internals changed` });
            strict = false;
            continue;
        }
        validator._ajv.addFormat('date-time', { type: 'string', validate: isDateTimeWithOffset });
        try {
            validator.validate('urn:Heartbeat.conf', { currentTime: '2026-12-06T10:00:00' });
            strict = false; // a naive timestamp passed
        } catch (error) {
            // expected: rejected
        }
        validator.validate('urn:Heartbeat.conf', { currentTime: '2026-12-06T10:00:00Z' });
    }
    return strict;
}

const state = {
    bootStatus: 'Accepted',
    interval: 300,
    authorize: new Map(), // idToken -> {status, groupIdToken, ...}
    authorizeDefault: { status: 'Accepted' },
    overrides: new Map(), // action -> {result} | {error: {code, message}}
    nextTransactionId: 1,
};

function now() {
    return new Date().toISOString();
}

function idTokenInfo201(token) {
    const entry = state.authorize.get(token) ?? state.authorizeDefault;
    const info = { status: entry.status ?? 'Accepted' };
    const group = entry.groupIdToken;
    if (group !== undefined && group !== null) {
        info.groupIdToken = typeof group === 'string' ? { idToken: group, type: 'Central' } : group;
    }
    for (const key of ['cacheExpiryDateTime', 'chargingPriority', 'evseId', 'language1', 'personalMessage']) {
        if (entry[key] !== undefined) info[key] = entry[key];
    }
    return info;
}

function idTagInfo16(token) {
    const entry = state.authorize.get(token) ?? state.authorizeDefault;
    const info = { status: entry.status ?? 'Accepted' };
    const parent = entry.parentIdTag ?? entry.groupIdToken;
    if (parent !== undefined && parent !== null) {
        info.parentIdTag = typeof parent === 'string' ? parent : parent.idToken;
    }
    if (entry.expiryDate !== undefined) info.expiryDate = entry.expiryDate;
    return info;
}

const empty = () => ({});
const DEFAULTS = {
    'ocpp2.0.1': {
        BootNotification: () => ({ currentTime: now(), interval: state.interval, status: state.bootStatus }),
        Heartbeat: () => ({ currentTime: now() }),
        StatusNotification: empty,
        Authorize: params => ({ idTokenInfo: idTokenInfo201(params.idToken.idToken) }),
        TransactionEvent: params => (params.idToken ? { idTokenInfo: idTokenInfo201(params.idToken.idToken) } : {}),
        MeterValues: empty,
        ReservationStatusUpdate: empty,
        NotifyReport: empty,
        NotifyEvent: empty,
        NotifyMonitoringReport: empty,
        NotifyCustomerInformation: empty,
        NotifyDisplayMessages: empty,
        NotifyChargingLimit: empty,
        ClearedChargingLimit: empty,
        ReportChargingProfiles: empty,
        NotifyEVChargingNeeds: () => ({ status: 'Accepted' }),
        NotifyEVChargingSchedule: () => ({ status: 'Accepted' }),
        SecurityEventNotification: empty,
        SignCertificate: () => ({ status: 'Accepted' }),
        FirmwareStatusNotification: empty,
        PublishFirmwareStatusNotification: empty,
        LogStatusNotification: empty,
        DataTransfer: () => ({ status: 'UnknownVendorId' }),
    },
    'ocpp1.6': {
        BootNotification: () => ({ currentTime: now(), interval: state.interval, status: state.bootStatus }),
        Heartbeat: () => ({ currentTime: now() }),
        StatusNotification: empty,
        Authorize: params => ({ idTagInfo: idTagInfo16(params.idTag) }),
        StartTransaction: params => ({ transactionId: state.nextTransactionId++, idTagInfo: idTagInfo16(params.idTag) }),
        StopTransaction: params => (params.idTag ? { idTagInfo: idTagInfo16(params.idTag) } : {}),
        MeterValues: empty,
        DataTransfer: () => ({ status: 'UnknownVendorId' }),
        DiagnosticsStatusNotification: empty,
        FirmwareStatusNotification: empty,
        SecurityEventNotification: empty,
        LogStatusNotification: empty,
        SignedFirmwareStatusNotification: empty,
        SignCertificate: () => ({ status: 'Accepted' }),
    },
};

function answer(client, { method, params, messageId }) {
    const event = {
        event: 'call', identity: client.identity, protocol: client.protocol, messageId, action: method, params,
        response: null, error: null,
    };
    const override = state.overrides.get(method);
    const fallback = DEFAULTS[client.protocol]?.[method];
    if (override?.error) {
        event.error = override.error;
        emit(event);
        throw createRPCError(override.error.code ?? 'GenericError', override.error.message ?? '');
    }
    if (!override && !fallback) {
        event.error = { code: 'NotImplemented', message: `no handler for ${method}` };
        emit(event);
        throw createRPCError('NotImplemented', `no handler for ${method}`);
    }
    event.response = override ? override.result : fallback(params);
    emit(event);
    return event.response;
}

async function main() {
    const options = parseArgs(process.argv.slice(2));
    const strictDatetime = tightenDateTime();
    state.nextTransactionId = options.nextTransactionId;
    const server = new RPCServer({
        protocols: PROTOCOLS,
        strictMode: true,
        callTimeoutMs: 30000,
    });
    const clients = new Map(); // identity -> client (the latest connection)
    let latest = null;

    server.auth((accept, reject, handshake) => {
        const reasonFor = (status, reason) => {
            emit({ event: 'rejected', status, reason, identity: handshake.identity, endpoint: handshake.endpoint });
            reject(status, reason);
        };
        if (handshake.endpoint !== ENDPOINT) {
            return reasonFor(404, `no such endpoint (expected ${ENDPOINT}/<identity>)`);
        }
        // ocpp-rpc would accept a client offering none of our subprotocols (without one, and without strict
        // validation): refuse it, as a real CSMS does.
        const protocol = PROTOCOLS.find(p => handshake.protocols.has(p));
        if (!protocol) {
            return reasonFor(400, `no supported subprotocol in ${JSON.stringify([...handshake.protocols])}`);
        }
        if (options.password !== null) {
            const given = handshake.password; // a Buffer, only when the username is the identity
            if (!given || !given.equals(Buffer.from(options.password, 'utf8'))) {
                return reasonFor(401, given ? 'wrong password' : 'missing or mismatched Basic credentials');
            }
        }
        accept({}, protocol);
    });

    server.on('client', client => {
        clients.set(client.identity, client);
        latest = client;
        emit({ event: 'connected', identity: client.identity, protocol: client.protocol });
        client.on('strictValidationFailure', failure => emit({
            event: 'validation_error',
            identity: client.identity,
            action: failure.method,
            messageId: failure.messageId,
            outbound: failure.outbound,
            isCall: failure.isCall,
            params: failure.params ?? null,
            result: failure.result ?? null,
            code: failure.error?.rpcErrorCode ?? failure.error?.name ?? 'Error',
            message: failure.error?.message ?? String(failure.error),
        }));
        client.on('badMessage', bad => emit({
            event: 'bad_message',
            identity: client.identity,
            message: bad.buffer?.toString() ?? null,
            error: bad.error?.message ?? String(bad.error),
        }));
        client.on('close', ({ code, reason }) => {
            if (clients.get(client.identity) === client) clients.delete(client.identity);
            if (latest === client) latest = [...clients.values()].pop() ?? null;
            emit({ event: 'disconnected', identity: client.identity, code, reason: String(reason ?? '') });
        });
        client.handle(call => answer(client, call));
    });

    const httpServer = await server.listen(options.port, options.host);
    emit({ event: 'listening', port: httpServer.address().port, strictDatetime });

    const pick = identity => (identity ? clients.get(identity) : latest) ?? null;

    async function run(cmd) {
        switch (cmd.cmd) {
            case 'call': {
                const client = pick(cmd.identity);
                if (!client) {
                    emit({ event: 'error', id: cmd.id, code: 'NoStation', message: 'no station connected' });
                    return;
                }
                try {
                    const result = await client.call(cmd.action, cmd.params ?? {}, { callTimeoutMs: cmd.timeoutMs ?? 30000 });
                    emit({ event: 'result', id: cmd.id, result });
                } catch (error) {
                    emit({
                        event: 'error', id: cmd.id, code: error.rpcErrorCode ?? error.name ?? 'Error',
                        message: error.message ?? String(error), details: error.details ?? null,
                    });
                }
                return;
            }
            case 'disconnect': {
                const client = pick(cmd.identity);
                if (client) await client.close({ code: cmd.code ?? 1001, reason: cmd.reason ?? '', force: !!cmd.force });
                break;
            }
            case 'boot_status':
                state.bootStatus = cmd.status;
                if (cmd.interval !== undefined) state.interval = cmd.interval;
                break;
            case 'authorize': {
                const { cmd: _c, id: _i, idToken, ...entry } = cmd;
                state.authorize.set(idToken, entry);
                break;
            }
            case 'respond':
                if (cmd.result === undefined && cmd.error === undefined) state.overrides.delete(cmd.action);
                else state.overrides.set(cmd.action, cmd.error ? { error: cmd.error } : { result: cmd.result });
                break;
            case 'stop':
                await stop();
                return;
            default:
                emit({ event: 'error', id: cmd.id ?? null, code: 'UnknownCommand', message: `unknown cmd ${cmd.cmd}` });
                return;
        }
        if (cmd.id !== undefined) emit({ event: 'ack', id: cmd.id, cmd: cmd.cmd });
    }

    let stopping = false;
    async function stop() {
        if (stopping) return;
        stopping = true;
        await server.close({ code: 1001, force: true });
        process.exit(0);
    }

    const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    lines.on('line', line => {
        if (!line.trim()) return;
        let cmd;
        try {
            cmd = JSON.parse(line);
        } catch (error) {
            emit({ event: 'error', id: null, code: 'BadCommand', message: `not JSON: ${line}` });
            return;
        }
        run(cmd).catch(error => emit({ event: 'error', id: cmd.id ?? null, code: 'Exception', message: String(error) }));
    });
    lines.on('close', () => stop());
    process.on('SIGTERM', () => stop());
}

main().catch(error => {
    emit({ event: 'fatal', message: String(error && error.stack ? error.stack : error) });
    process.exit(1);
});
