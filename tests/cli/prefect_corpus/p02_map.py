"""Fan out with .map and unmapped, then reduce (Prefect's mapping docs)."""

from prefect import flow, task, unmapped


@task(retries=2)
def fetch_price(symbol: str, currency: str) -> dict:
    return {"symbol": symbol, "price": len(symbol) * 10.0, "currency": currency}


@task
def summarize(quotes: list[dict]) -> dict:
    return {
        "count": len(quotes),
        "total": sum(q["price"] for q in quotes),
        "currency": quotes[0]["currency"],
    }


@flow
def portfolio(symbols: list[str], currency: str = "EUR") -> dict:
    prices = fetch_price.map(symbols, unmapped(currency))
    return summarize(prices)
