/**
 * Two tiers of errors. HttpError carries a stable `code` and a message meant
 * for the API caller; anything else is an internal error, logged with its
 * cause and answered with a bare 500.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

export interface ValidationItem {
  loc: string[];
  msg: string;
  type: string;
}

/** 422 with the `{detail: [{loc, msg, type}]}` body of the contract. */
export class ValidationError extends Error {
  readonly status = 422;
  constructor(readonly items: ValidationItem[]) {
    super(items.map((i) => `${i.loc.join('.')}: ${i.msg}`).join('; '));
  }
}

export const notFound = (what = 'Entity') => new HttpError(404, 'not_found', `${what} not found`);
export const conflict = (detail: string) => new HttpError(409, 'conflict', detail);
export const unauthorized = () => new HttpError(401, 'authentication_failed', 'Invalid or missing bearer token');

export function invalid(loc: string[], msg: string, type = 'value_error'): ValidationError {
  return new ValidationError([{ loc, msg, type }]);
}
