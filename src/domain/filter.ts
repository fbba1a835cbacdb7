/**
 * Which endpoints receive a message. An endpoint with no `eventTypes` takes
 * every type; with no `channels` takes every channel. With channels set it
 * takes only messages that carry at least one of them.
 */
export interface EndpointFilter {
  disabled: boolean;
  eventTypes: readonly string[] | null;
  channels: readonly string[] | null;
}

export function matches(ep: EndpointFilter, eventType: string, channels: readonly string[] | null): boolean {
  if (ep.disabled) return false;
  if (ep.eventTypes && ep.eventTypes.length > 0 && !ep.eventTypes.includes(eventType)) return false;
  if (ep.channels && ep.channels.length > 0) {
    if (!channels || !channels.some((c) => ep.channels!.includes(c))) return false;
  }
  return true;
}
