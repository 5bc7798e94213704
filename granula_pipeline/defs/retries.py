"""The chunk op's retry policy: exponential backoff with jitter, each wait capped."""

from dagster import Backoff, Jitter, RetryPolicy

from granula_pipeline.settings import Settings


class CappedRetryPolicy(RetryPolicy):
    """Dagster's exponential backoff, with every wait held to at most `max_backoff` seconds."""

    max_backoff: float = 30.0

    def calculate_delay(self, attempt_num: int) -> float:
        return max(0.0, min(self.max_backoff, float(super().calculate_delay(attempt_num))))


def chunk_retry_policy(settings: Settings) -> RetryPolicy:
    policy_class = type(
        "CappedRetryPolicy", (CappedRetryPolicy,), {"max_backoff": settings.max_backoff}
    )
    return policy_class(
        max_retries=settings.max_retries,
        delay=settings.base_backoff,
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.PLUS_MINUS,
    )
