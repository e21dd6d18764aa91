/**
 * Search attributes that make migrations findable in Temporal's list and UI: by plan, by phase,
 * by target table. A server must know them (`temporal operator search-attribute create`); the
 * local servers Ferry starts register them itself.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const planNameKey = defineSearchAttributeKey('FerryPlan', SearchAttributeType.KEYWORD);
export const phaseKey = defineSearchAttributeKey('FerryPhase', SearchAttributeType.KEYWORD);
export const targetTableKey = defineSearchAttributeKey('FerryTarget', SearchAttributeType.KEYWORD);

/** For `temporal server start-dev --search-attribute`: name to type. */
export const ferrySearchAttributes: Record<string, string> = Object.fromEntries([planNameKey, phaseKey, targetTableKey].map((key) => [key.name, 'Keyword']));
