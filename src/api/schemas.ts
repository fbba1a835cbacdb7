import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * Request and response schemas of the v1 API, written for Hooklane after the
 * Svix server's wire contract (field names, enums, limits). They drive
 * validation (422 on mismatch), response serialisation and the OpenAPI
 * document served at /api/v1/openapi.json.
 */

export const Nullable = <T extends TSchema>(s: T) => Type.Unsafe<Static<T> | null>({ ...s, nullable: true });

const NAME_PATTERN = '^[a-zA-Z0-9\\-_.]+$';
export const Uid = Type.String({ minLength: 1, maxLength: 256, pattern: NAME_PATTERN });
export const EventTypeName = Type.String({ minLength: 1, maxLength: 256, pattern: NAME_PATTERN });
export const Channel = Type.String({ minLength: 1, maxLength: 128, pattern: NAME_PATTERN });
/** Input limits beyond the contract's (see SECURITY.md): metadata is small labels, not storage. */
export const METADATA_MAX_KEYS = 50;
export const METADATA_MAX_KEY_LENGTH = 256;
export const METADATA_MAX_VALUE_LENGTH = 1024;
export const Metadata = Type.Record(Type.String(), Type.String({ maxLength: METADATA_MAX_VALUE_LENGTH }), {
  maxProperties: METADATA_MAX_KEYS, propertyNames: { maxLength: METADATA_MAX_KEY_LENGTH },
});
export const DateTime = Type.String({ format: 'date-time' });
// The contract's HMAC secret pattern, plus Standard Webhooks ed25519 private keys
// (`whsk_`). The exact whsk_ checks are made in code for a precise 422 message; a
// `whpk_` passes the pattern only so that code can say it is the public key.
const SecretString = Type.String({
  pattern: '^((whsec_)?[a-zA-Z0-9+/=]{32,100}|wh(sk|pk)_[a-zA-Z0-9+/=]{1,100})$',
  description: 'An HMAC secret (`whsec_` + 32 to 100 base64 characters; the prefix is optional) or an ed25519 private key (`whsk_` + base64 '
    + 'of the 32-byte seed, or of the 64-byte seed followed by the public key as libsodium stores it). Omitted: a key is generated.',
});
const Url = Type.String({ minLength: 1, maxLength: 65536, format: 'uri' });
const ThrottleIn = Nullable(Type.Integer({ minimum: 1, maximum: 65535 }));
const ThrottleOut = Nullable(Type.Integer({ minimum: 0, maximum: 65535 }));
export const MessageStatusEnum = Type.Unsafe<0 | 1 | 2 | 3>({ type: 'integer', enum: [0, 1, 2, 3], description: '0 success, 1 pending, 2 fail, 3 sending' });
const StatusText = Type.Unsafe<'success' | 'pending' | 'fail' | 'sending'>({ type: 'string', enum: ['success', 'pending', 'fail', 'sending'] });

export const ListResponse = <T extends TSchema>(item: T, name: string) =>
  Type.Object(
    { data: Type.Array(item), iterator: Nullable(Type.String()), prevIterator: Nullable(Type.String()), done: Type.Boolean() },
    { $id: `ListResponse_${name}` },
  );

export const HttpErrorOut = Type.Object({ code: Type.String(), detail: Type.String() }, { $id: 'HttpErrorOut' });
export const ValidationErrorOut = Type.Object(
  { detail: Type.Array(Type.Object({ loc: Type.Array(Type.String()), msg: Type.String(), type: Type.String() })) },
  { $id: 'HTTPValidationError' },
);

// --- applications -----------------------------------------------------------

export const ApplicationIn = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 1024 }),
  uid: Type.Optional(Nullable(Uid)),
  metadata: Type.Optional(Metadata),
  throttleRate: Type.Optional(ThrottleIn),
});
export type ApplicationIn = Static<typeof ApplicationIn>;
export const ApplicationPatch = Type.Partial(
  Type.Object({ name: Type.String({ minLength: 1, maxLength: 1024 }), uid: Nullable(Uid), metadata: Metadata, throttleRate: ThrottleOut }),
);
export type ApplicationPatch = Static<typeof ApplicationPatch>;
export const ApplicationOut = Type.Object(
  {
    id: Type.String(), uid: Nullable(Type.String()), name: Type.String(), metadata: Metadata, throttleRate: Type.Optional(ThrottleOut),
    createdAt: DateTime, updatedAt: DateTime,
  },
  { $id: 'ApplicationOut' },
);

// --- event types ------------------------------------------------------------

const Schemas = Nullable(Type.Record(Type.String(), Type.Object({}, { additionalProperties: true })));
export const EventTypeIn = Type.Object({
  name: EventTypeName,
  description: Type.String({ maxLength: 65536 }),
  archived: Type.Optional(Type.Boolean()),
  deprecated: Type.Optional(Type.Boolean()),
  featureFlag: Type.Optional(Nullable(Uid)),
  schemas: Type.Optional(Schemas),
});
export type EventTypeIn = Static<typeof EventTypeIn>;
export const EventTypeUpdate = Type.Omit(EventTypeIn, ['name']);
export type EventTypeUpdate = Static<typeof EventTypeUpdate>;
export const EventTypePatch = Type.Partial(EventTypeUpdate);
export type EventTypePatch = Static<typeof EventTypePatch>;
export const EventTypeOut = Type.Object(
  {
    name: Type.String(), description: Type.String(), archived: Type.Boolean(), deprecated: Type.Boolean(), featureFlag: Nullable(Type.String()),
    schemas: Type.Optional(Schemas), createdAt: DateTime, updatedAt: DateTime,
  },
  { $id: 'EventTypeOut' },
);

// --- endpoints --------------------------------------------------------------

const EventTypes = Nullable(Type.Array(EventTypeName, { minItems: 1, uniqueItems: true }));
const Channels = Nullable(Type.Array(Channel, { minItems: 1, maxItems: 10, uniqueItems: true }));
const EndpointFields = {
  url: Url,
  description: Type.Optional(Type.String({ maxLength: 65536 })),
  uid: Type.Optional(Nullable(Uid)),
  disabled: Type.Optional(Type.Boolean()),
  eventTypes: Type.Optional(EventTypes),
  channels: Type.Optional(Channels),
  metadata: Type.Optional(Metadata),
  throttleRate: Type.Optional(ThrottleIn),
  /** Deprecated in the contract, accepted and ignored. */
  version: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
  rateLimit: Type.Optional(Nullable(Type.Integer({ minimum: 0 }))),
};
export const EndpointIn = Type.Object({ ...EndpointFields, secret: Type.Optional(Nullable(SecretString)) });
export type EndpointIn = Static<typeof EndpointIn>;
export const EndpointUpdate = Type.Object(EndpointFields);
export type EndpointUpdate = Static<typeof EndpointUpdate>;
export const EndpointPatch = Type.Partial(
  Type.Object({
    url: Url, description: Type.String({ maxLength: 65536 }), uid: Nullable(Uid), disabled: Type.Boolean(), eventTypes: Nullable(Type.Array(EventTypeName, { uniqueItems: true })),
    channels: Nullable(Type.Array(Channel, { maxItems: 10, uniqueItems: true })), metadata: Metadata, throttleRate: ThrottleOut, secret: Nullable(SecretString),
  }),
);
export type EndpointPatch = Static<typeof EndpointPatch>;
const EndpointOutFields = {
  id: Type.String(), uid: Nullable(Type.String()), url: Type.String(), description: Type.String(), disabled: Type.Boolean(),
  eventTypes: Nullable(Type.Array(Type.String())), channels: Nullable(Type.Array(Type.String())), metadata: Metadata,
  throttleRate: Nullable(Type.Integer()), createdAt: DateTime, updatedAt: DateTime,
  /** Deprecated alias of eventTypes, read by the Svix SDKs. */
  filterTypes: Type.Optional(Nullable(Type.Array(Type.String()))),
};
export const EndpointOut = Type.Object({ ...EndpointOutFields, version: Type.Integer() }, { $id: 'EndpointOut' });
export const EndpointSecretOut = Type.Object(
  { key: Type.String({ description: 'The `whsec_` HMAC secret, or for an ed25519 endpoint the `whpk_` public key (never the private key)' }) },
  { $id: 'EndpointSecretOut' },
);
export const EndpointSecretRotateIn = Type.Object({
  key: Type.Optional(Nullable(SecretString)),
  gracePeriodSeconds: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 604800 }))),
});
export type EndpointSecretRotateIn = Static<typeof EndpointSecretRotateIn>;
const HeaderName = { pattern: '^[!#$%&\'*+\\-.^_`|~0-9A-Za-z]+$', minLength: 1, maxLength: 256 };
// A Record's key schema gives only the pattern: other names are refused by
// additionalProperties, long ones by propertyNames. Values are what an HTTP
// header can carry (no CR, LF, NUL or characters beyond U+00FF).
const HeaderMap = { additionalProperties: false, maxProperties: 50, propertyNames: { maxLength: 256 } };
const HeaderValue = { maxLength: 4096, pattern: '^[\\t\\x20-\\x7e\\x80-\\xff]*$' };
export const EndpointHeadersIn = Type.Object({ headers: Type.Record(Type.String(HeaderName), Type.String(HeaderValue), HeaderMap) });
export type EndpointHeadersIn = Static<typeof EndpointHeadersIn>;
export const EndpointHeadersPatchIn = Type.Object({ headers: Type.Record(Type.String(HeaderName), Nullable(Type.String(HeaderValue)), HeaderMap) });
export type EndpointHeadersPatchIn = Static<typeof EndpointHeadersPatchIn>;
export const EndpointHeadersOut = Type.Object({ headers: Metadata, sensitive: Type.Array(Type.String()) }, { $id: 'EndpointHeadersOut' });
export const EndpointStats = Type.Object(
  { success: Type.Integer(), pending: Type.Integer(), fail: Type.Integer(), sending: Type.Integer(), canceled: Type.Integer() },
  { $id: 'EndpointStats' },
);
export const RecoverIn = Type.Object({ since: DateTime, until: Type.Optional(Nullable(DateTime)) });
export type RecoverIn = Static<typeof RecoverIn>;
export const RecoverOut = Type.Object(
  { id: Type.String(), status: Type.Literal('running'), task: Type.Literal('endpoint.recover'), updatedAt: DateTime },
  { $id: 'RecoverOut' },
);
export const EventExampleIn = Type.Object({ eventType: EventTypeName });
export type EventExampleIn = Static<typeof EventExampleIn>;

// --- messages and attempts -------------------------------------------------

export const MessageIn = Type.Object({
  eventType: EventTypeName,
  payload: Type.Object({}, { additionalProperties: true }),
  eventId: Type.Optional(Nullable(Uid)),
  channels: Type.Optional(Nullable(Type.Array(Channel, { minItems: 1, maxItems: 5, uniqueItems: true }))),
  payloadRetentionPeriod: Type.Optional(Type.Integer({ minimum: 5, maximum: 90 })),
  application: Type.Optional(Nullable(ApplicationIn)),
  tags: Type.Optional(Nullable(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 5 }))),
});
export type MessageIn = Static<typeof MessageIn>;
const MessageOutFields = {
  id: Type.String(), eventType: Type.String(), eventId: Nullable(Type.String()), channels: Nullable(Type.Array(Type.String())),
  payload: Type.Object({}, { additionalProperties: true }), timestamp: DateTime,
};
export const MessageOut = Type.Object(MessageOutFields, { $id: 'MessageOut' });
const Delivery = { status: MessageStatusEnum, statusText: StatusText, nextAttempt: Nullable(DateTime) };
export const EndpointMessageOut = Type.Object({ ...MessageOutFields, ...Delivery }, { $id: 'EndpointMessageOut' });
export const MessageEndpointOut = Type.Object({ ...EndpointOutFields, ...Delivery }, { $id: 'MessageEndpointOut' });
export const MessageAttemptOut = Type.Object(
  {
    id: Type.String(), msgId: Type.String(), endpointId: Type.String(), url: Type.String(), response: Type.String(),
    responseStatusCode: Type.Integer(), responseDurationMs: Type.Integer(), status: MessageStatusEnum, statusText: StatusText,
    triggerType: Type.Unsafe<0 | 1>({ type: 'integer', enum: [0, 1], description: '0 scheduled, 1 manual' }), timestamp: DateTime,
  },
  { $id: 'MessageAttemptOut' },
);

// --- query strings -------------------------------------------------------------

export const Limit = Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Page size (at most 250)' }));
/** Iterators are ids or event type names, `-`-prefixed to walk back; nothing else is passed to the store. */
export const Iterator = Type.Optional(Nullable(Type.String({ maxLength: 300, pattern: '^[a-zA-Z0-9\\-_.]*$' })));
export const Order = Type.Optional(Nullable(Type.Unsafe<'ascending' | 'descending'>({ type: 'string', enum: ['ascending', 'descending'] })));
export const WithContent = Type.Optional(Type.Boolean());
export const Since = Type.Optional(Nullable(DateTime));
/** Repeated (`event_types=a&event_types=b`) or comma-separated. */
export const EventTypesFilter = Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 50 }));
