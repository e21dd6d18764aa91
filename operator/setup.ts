/** Preparing a Temporal namespace that Ferry did not start for Ferry's migrations: its search attributes. */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { ferrySearchAttributes } from '../lib/search-attributes';

const { IndexedValueType } = temporal.api.enums.v1;

const TYPES: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  Keyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
};

export interface SetupOutcome {
  namespace: string;
  added: string[];
  present: string[];
}

/** A search attribute of Ferry's name that the namespace already holds with another type. */
export class SearchAttributeConflictError extends Error {
  override name = 'SearchAttributeConflictError';
}

/** Registers Ferry's search attributes in the namespace; safe to run twice. */
export async function registerSearchAttributes(client: Client, namespace: string): Promise<SetupOutcome> {
  const operator = client.connection.operatorService;
  const existing = (await operator.listSearchAttributes({ namespace })).customAttributes ?? {};
  const missing: Record<string, temporal.api.enums.v1.IndexedValueType> = {};
  const present: string[] = [];
  for (const [name, typeName] of Object.entries(ferrySearchAttributes)) {
    const wanted = TYPES[typeName]!;
    const found = existing[name];
    if (found === undefined || found === null) missing[name] = wanted;
    else if (found !== wanted) throw new SearchAttributeConflictError(`search attribute ${name} exists in namespace ${namespace} with another type (${IndexedValueType[found]}); Ferry needs ${typeName}`);
    else present.push(name);
  }
  if (Object.keys(missing).length > 0) await operator.addSearchAttributes({ namespace, searchAttributes: missing });
  return { namespace, added: Object.keys(missing), present };
}
